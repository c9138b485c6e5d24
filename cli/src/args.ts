/**
 * Argument parsing for subcommands, on node:util parseArgs, with help text kept beside the options.
 *
 * Commands whose options include `config` also read a config file (`--config FILE`, or env
 * DOPPEL_CONFIG): one `name = value` per line, where name is a long option of that command. A value
 * from the file is used only when the option is neither on the command line nor in its environment
 * variable (see {@link envName}), so the order is: command line > environment > config file > default.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidArgumentError } from '../../shared/src/mod.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Parsed {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

/** Environment variables that predate the DOPPEL_<NAME> rule and keep their names. */
const LEGACY_ENV: Readonly<Record<string, string>> = {
  nats: 'DOPPEL_NATS_URL',
  data: 'DOPPEL_DATA_DIR',
  grpc: 'DOPPEL_GRPC_LISTEN',
  http: 'DOPPEL_HTTP_LISTEN',
  'repo-listen': 'DOPPEL_REPO_LISTEN',
};

/**
 * The environment variable of a long option: `DOPPEL_` and the name in upper case with `-` as `_`
 * (`repo-dir` → DOPPEL_REPO_DIR), except the legacy names (`nats` → DOPPEL_NATS_URL, `data` →
 * DOPPEL_DATA_DIR, `grpc` → DOPPEL_GRPC_LISTEN, `http` → DOPPEL_HTTP_LISTEN, `repo-listen` →
 * DOPPEL_REPO_LISTEN, the rule's own name).
 */
export function envName(flag: string): string {
  return LEGACY_ENV[flag] ?? `DOPPEL_${flag.toUpperCase().replace(/-/g, '_')}`;
}

/**
 * Parses a command line. With a `config` option, fills in what the config file sets and neither the
 * command line nor a set environment variable (even an empty one) does; the commands still read
 * their environment variables themselves (`str(p, 'host', process.env.DOPPEL_HOST ?? '')`).
 * `env` is for tests.
 */
export function parse(argv: string[], options: Options, env: NodeJS.ProcessEnv = process.env): Parsed {
  const r = parseCommandLine(argv, options);
  const values = r.values as Parsed['values'];
  const configOption = options.config;
  if (configOption !== undefined && configOption.type === 'string' && values.help !== true) {
    const v = values.config;
    const file = typeof v === 'string' ? v : Array.isArray(v) ? v[v.length - 1] : env[envName('config')];
    if (file !== undefined && file !== '') {
      const onCommandLine = new Set<string>();
      for (const t of r.tokens) if (t.kind === 'option') onCommandLine.add(t.name);
      for (const [name, value] of Object.entries(readConfigFile(file, options))) {
        if (onCommandLine.has(name) || env[envName(name)] !== undefined) continue;
        values[name] = value;
      }
    }
  }
  return { values, positionals: r.positionals };
}

function parseCommandLine(argv: string[], options: Options) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true, tokens: true });
  } catch (err) {
    throw new InvalidArgumentError(`${(err as Error).message} (see --help)`, { cause: err });
  }
}

/** Reads and checks a config file against a command's options: every name known, every value typed. */
function readConfigFile(file: string, options: Options): Record<string, string | boolean | string[]> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`cannot read config file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const known = Object.keys(options).filter((n) => n !== 'config' && n !== 'help');
  const out: Record<string, string | boolean | string[]> = {};
  const firstLine = new Map<string, number>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    const at = `${file}:${i + 1}`;
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9][A-Za-z0-9-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) throw new InvalidArgumentError(`${at}: expected 'name = value', got ${JSON.stringify(line)}`);
    const name = m[1] ?? '';
    let value = m[2] ?? '';
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) value = value.slice(1, -1);
    const opt = known.includes(name) ? options[name] : undefined;
    if (opt === undefined) {
      throw new InvalidArgumentError(`${at}: unknown setting '${name}' (this command takes: ${known.sort().join(', ')})`);
    }
    if (opt.type === 'boolean') {
      if (value !== 'true' && value !== 'false') throw new InvalidArgumentError(`${at}: '${name}' must be true or false (got ${JSON.stringify(value)})`);
      if (firstLine.has(name)) throw new InvalidArgumentError(`${at}: '${name}' is already set on line ${firstLine.get(name)}`);
      out[name] = value === 'true';
    } else if (opt.multiple === true) {
      const prev = out[name];
      out[name] = Array.isArray(prev) ? [...prev, value] : [value];
    } else {
      if (firstLine.has(name)) throw new InvalidArgumentError(`${at}: '${name}' is already set on line ${firstLine.get(name)}`);
      out[name] = value;
    }
    if (!firstLine.has(name)) firstLine.set(name, i + 1);
  }
  return out;
}

export function str(p: Parsed, name: string, fallback = ''): string {
  const v = p.values[name];
  return typeof v === 'string' ? v : fallback;
}

export function int(p: Parsed, name: string, fallback: number): number {
  const v = p.values[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== 'string' || !/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(`--${name} must be a whole number (got ${JSON.stringify(v)})`);
  }
  return n;
}

export function flag(p: Parsed, name: string): boolean {
  return p.values[name] === true;
}

/** A repeatable string option (declared with `multiple: true`). */
export function list(p: Parsed, name: string): string[] {
  const v = p.values[name];
  return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
}
