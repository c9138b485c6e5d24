/**
 * One root logger per process; components and jobs take child loggers.
 * JSON by default, `pretty` for people (pino-pretty, synchronous, to stderr).
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';
export type LogFormat = 'json' | 'pretty';

export interface LoggerOptions {
  name: string;
  level?: LevelWithSilent;
  format?: LogFormat;
  /** Destination file descriptor; default 2 (stderr) so stdout stays for command output. */
  fd?: number;
}

export function createRootLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? ((process.env.DOPPEL_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info');
  const format = opts.format ?? ((process.env.DOPPEL_LOG_FORMAT as LogFormat | undefined) ?? 'json');
  const fd = opts.fd ?? 2;
  if (format === 'pretty') {
    return pino({
      name: opts.name,
      level,
      transport: { target: 'pino-pretty', options: { destination: fd, colorize: process.stderr.isTTY, sync: true } },
    });
  }
  return pino({ name: opts.name, level }, pino.destination({ fd, sync: false }));
}

/** A logger that drops everything (library use, quiet tests). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
