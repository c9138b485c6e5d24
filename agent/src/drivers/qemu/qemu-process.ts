/**
 * A QEMU child process with its QMP connection: spawn, wait for QMP, capture stderr for error messages, quit
 * or kill. `adopt` connects to a QEMU this process did not start (one a previous agent left running).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readSync, fstatSync, rmSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  DeadlineExceededError,
  DoppelError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { QmpClient, QmpClosedError, type QmpConnectOptions } from './qmp.js';

/** How much of QEMU's stderr is kept for error messages. */
export const STDERR_TAIL_BYTES = 64 * 1024;

/** The QEMU binary: `DOPPEL_QEMU_BINARY`, else `qemu-system-x86_64` on the PATH. */
export function defaultQemuBinary(): string {
  return process.env.DOPPEL_QEMU_BINARY || 'qemu-system-x86_64';
}

/** How a QEMU process ended. */
export interface QemuExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The last STDERR_TAIL_BYTES of its stderr. */
  stderr: string;
}

/** QEMU exited, or never brought its QMP socket up, while starting. `exit` is set when it exited. */
export class QemuStartError extends FailedPreconditionError {
  override name = 'QemuStartError';
  readonly exit: QemuExit | null;
  constructor(message: string, exit: QemuExit | null, options?: { cause?: unknown }) {
    super(message, options);
    this.exit = exit;
  }
}

export interface QemuStartOptions {
  /** QEMU's arguments. Without `qmpSocketPath`, a QMP monitor in a private temp directory is appended. */
  args: string[];
  /** Default: defaultQemuBinary(). */
  binary?: string;
  /**
   * The QMP socket `args` already serve (as buildQemuArgs writes it): for a QEMU that must be adoptable after an
   * agent restart. A stale socket file there is removed; a live one is an AlreadyExistsError.
   */
  qmpSocketPath?: string;
  /** Bound on QEMU coming up with QMP (default 15 s). */
  startTimeoutMs?: number;
  /** Options for the QMP connection (its timeoutMs is the time left of startTimeoutMs). */
  qmp?: Omit<QmpConnectOptions, 'timeoutMs' | 'logger'>;
  /**
   * Let QEMU outlive this process (own process group, not waited on by the event loop). Its stderr then goes to
   * `stderrPath`, or nowhere.
   */
  detached?: boolean;
  /** Append QEMU's stderr to this file instead of a pipe; the tail is read back from it. */
  stderrPath?: string;
  logger?: Logger;
}

/**
 * A running QEMU that this process started. `exited` resolves (never rejects) when it ends; the QMP client then
 * closes, failing pending commands with QmpClosedError.
 */
export class QemuProcess {
  readonly pid: number;
  readonly qmp: QmpClient;
  readonly qmpSocketPath: string;
  readonly exited: Promise<QemuExit>;

  private readonly child: ChildProcess;
  private readonly stderr: StderrTail;
  private readonly log: Logger;
  private exit: QemuExit | null = null;

  private constructor(child: ChildProcess, pid: number, qmp: QmpClient, qmpSocketPath: string, stderr: StderrTail, exited: Promise<QemuExit>, log: Logger) {
    this.child = child;
    this.pid = pid;
    this.qmp = qmp;
    this.qmpSocketPath = qmpSocketPath;
    this.stderr = stderr;
    this.log = log;
    this.exited = exited.then((e) => (this.exit = e));
  }

  /**
   * Starts QEMU and resolves once its QMP session is up. NotFoundError when the binary is missing; QemuStartError
   * (with QEMU's stderr in the message) when it exits first or QMP does not come up in time.
   */
  static async start(opts: QemuStartOptions): Promise<QemuProcess> {
    const binary = opts.binary ?? defaultQemuBinary();
    const startTimeoutMs = opts.startTimeoutMs ?? 15_000;
    const deadline = Date.now() + startTimeoutMs;
    let privateDir: string | null = null;
    let socketPath: string;
    const args = [...opts.args];
    if (opts.qmpSocketPath !== undefined) {
      socketPath = opts.qmpSocketPath;
      const escaped = socketPath.replaceAll(',', ',,');
      if (!args.some((a) => a.includes(escaped))) {
        throw new InvalidArgumentError(`qmpSocketPath ${socketPath} is not among QEMU's arguments: add a QMP monitor there, or omit qmpSocketPath`);
      }
      await clearStaleSocket(socketPath);
    } else {
      privateDir = mkdtempSync(join(tmpdir(), 'doppel-qemu-'));
      socketPath = join(privateDir, 'qmp.sock');
      args.push('-qmp', `unix:${socketPath},server=on,wait=off`);
    }
    const log = (opts.logger ?? silentLogger()).child({ component: 'qemu', qmp: socketPath });
    const removePrivateDir = (): void => {
      if (privateDir) rmSync(privateDir, { recursive: true, force: true });
    };

    const stderr = new StderrTail(opts.stderrPath);
    let child: ChildProcess;
    try {
      child = spawn(binary, args, {
        stdio: ['ignore', 'ignore', stderr.fd ?? (opts.detached ? 'ignore' : 'pipe')],
        detached: opts.detached ?? false,
      });
    } catch (err) {
      stderr.close();
      removePrivateDir();
      throw new QemuStartError(`cannot start ${binary}: ${err instanceof Error ? err.message : String(err)}`, null, { cause: err });
    }
    // The child has its own copy of a file descriptor for stderr; ours is not needed past the spawn.
    stderr.close();
    stderr.attach(child);
    const exited = new Promise<QemuExit>((resolve) => {
      let spawnError: Error | null = null;
      child.once('error', (err) => (spawnError = err));
      child.once('close', (code, signal) => {
        const tail = stderr.read();
        removePrivateDir();
        resolve({ code, signal, stderr: spawnError && !tail ? spawnError.message : tail });
      });
    });
    const spawned = await new Promise<Error | null>((resolve) => {
      child.once('spawn', () => resolve(null));
      child.once('error', (err) => resolve(err));
    });
    if (spawned || child.pid === undefined) {
      await exited;
      const code = (spawned as NodeJS.ErrnoException | null)?.code;
      if (code === 'ENOENT') throw new NotFoundError(`QEMU binary ${binary} not found (install qemu-system-x86 or set DOPPEL_QEMU_BINARY)`, { cause: spawned });
      throw new QemuStartError(`cannot start ${binary}: ${spawned?.message ?? 'no pid'}`, null, { cause: spawned });
    }
    const pid = child.pid;
    if (opts.detached) child.unref();
    log.debug({ pid, binary, args }, 'QEMU started');

    let exitedEarly: QemuExit | null = null;
    void exited.then((e) => (exitedEarly = e));
    let lastErr: unknown = null;
    for (;;) {
      if (exitedEarly) break;
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        const qmp = await Promise.race([
          QmpClient.connect(socketPath, { ...opts.qmp, timeoutMs: left, logger: opts.logger ?? silentLogger() }),
          exited.then(() => null),
        ]);
        if (qmp) return new QemuProcess(child, pid, qmp, socketPath, stderr, exited, log);
        break;
      } catch (err) {
        lastErr = err;
        // The socket appears while QEMU initialises: not there yet, or there but not listening yet.
        await Promise.race([sleep(20), exited]);
      }
    }
    const exit = exitedEarly as QemuExit | null;
    if (exit) {
      throw new QemuStartError(`QEMU exited (${describeExit(exit)}) before its QMP socket came up${stderrSuffix(exit.stderr)}`, exit, { cause: lastErr });
    }
    child.kill('SIGKILL');
    const killed = await exited;
    const why = lastErr instanceof Error ? `: ${lastErr.message}` : '';
    throw new QemuStartError(`QEMU did not bring QMP up at ${socketPath} within ${startTimeoutMs} ms${why}${stderrSuffix(killed.stderr)}`, killed, { cause: lastErr });
  }

  /** How it exited, once it has. */
  get exitInfo(): QemuExit | null {
    return this.exit;
  }

  /** The last STDERR_TAIL_BYTES of QEMU's stderr so far. */
  stderrTail(): string {
    return this.exit ? this.exit.stderr : this.stderr.read();
  }

  /** Sends a signal (default SIGKILL) unless QEMU already exited; `exited` tells when it is gone. */
  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.exit || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.child.kill(signal);
  }

  /** Asks QEMU to quit over QMP; SIGKILL when it has not exited within `timeoutMs` (default 10 s). Idempotent. */
  async quit(timeoutMs = 10_000): Promise<QemuExit> {
    if (this.exit) return this.exit;
    try {
      await this.qmp.execute('quit', undefined, { timeoutMs });
    } catch (err) {
      // The connection can close before the reply arrives: QEMU is on its way out either way.
      if (!(err instanceof QmpClosedError)) this.log.warn({ err }, 'QMP quit failed; killing QEMU');
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.log.warn({ pid: this.pid, timeoutMs }, 'QEMU did not quit in time; SIGKILL');
      this.kill('SIGKILL');
    }
    return this.exited;
  }
}

/**
 * A QMP session with a QEMU this process did not start, by its QMP socket. Its exit shows as the client's
 * `closed`. NotFoundError when the socket is missing, UnavailableError when nothing listens there.
 */
export function adopt(qmpSocketPath: string, opts?: QmpConnectOptions): Promise<QmpClient> {
  return QmpClient.connect(qmpSocketPath, opts);
}

/** "code 1", "signal SIGKILL". */
export function describeExit(exit: { code: number | null; signal: NodeJS.Signals | null }): string {
  return exit.signal ? `signal ${exit.signal}` : `code ${exit.code ?? '?'}`;
}

function stderrSuffix(stderr: string): string {
  const s = stderr.trim();
  return s ? `; QEMU said: ${s.length > 4000 ? '…' + s.slice(-4000) : s}` : '';
}

/** A socket file a dead QEMU left is removed; a live QMP server there must not get a second QEMU. */
async function clearStaleSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  try {
    const qmp = await QmpClient.connect(path, { timeoutMs: 500 });
    await qmp.close();
    throw new AlreadyExistsError(`a QEMU already serves QMP at ${path}`);
  } catch (err) {
    if (err instanceof AlreadyExistsError) throw err;
    if (err instanceof DeadlineExceededError) throw new AlreadyExistsError(`a process already listens on QMP socket ${path}`, { cause: err });
    if (err instanceof DoppelError && err.code === 'NOT_FOUND') return;
  }
  unlinkSync(path);
}

/** QEMU's stderr, last STDERR_TAIL_BYTES: in memory from a pipe, or read back from a file. */
class StderrTail {
  readonly fd: number | null;
  private buf = '';
  private closed = false;

  constructor(private readonly path: string | undefined) {
    this.fd = path ? openSync(path, 'a') : null;
  }

  attach(child: ChildProcess): void {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (s: string) => {
      this.buf += s;
      if (this.buf.length > 2 * STDERR_TAIL_BYTES) this.buf = this.buf.slice(-STDERR_TAIL_BYTES);
    });
  }

  read(): string {
    if (!this.path) return this.buf.length > STDERR_TAIL_BYTES ? this.buf.slice(-STDERR_TAIL_BYTES) : this.buf;
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return '';
    }
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, STDERR_TAIL_BYTES);
      const out = Buffer.alloc(len);
      readSync(fd, out, 0, len, size - len);
      return out.toString('utf8');
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.fd !== null) closeSync(this.fd);
  }
}
