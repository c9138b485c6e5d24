/**
 * A multi-host test harness on Linux network namespaces: every "host" is a
 * namespace with its own address in a private /24, joined by a Linux bridge
 * that lives in a separate hub namespace. Nothing is created in the root
 * namespace (no interfaces, no routes, no addresses), so a test never touches
 * the machine's real network and the root namespace cannot reach the hosts.
 *
 * Names (all start with NETNS_PREFIX "dpt-" so leftovers are easy to find):
 *   namespaces     dpt-<rid>-<pid>-hub, dpt-<rid>-<pid>-h-<host>
 *   bridge (hub)   dpt<rid>br        (fits IFNAMSIZ)
 *   veth (hub)     dpt<rid>h<i>      peer "eth0" inside the host namespace
 *   temp dirs      $TMPDIR/dpt-<rid>-<label>-XXXXXX
 * <rid> is 6 random hex digits; <pid> is the owning process, which lets
 * cleanupStaleNetns() tell a crashed run's leftovers from a parallel live run.
 *
 * Needs root and iproute2; use netnsSupport() to skip otherwise.
 * Set DOPPEL_NETNS_DEBUG=1 to mirror every spawned process's output to stderr.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { accessSync, constants as fsConstants, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const NETNS_PREFIX = 'dpt-';

export type NetnsSupport = { ok: true } | { ok: false; reason: string };

export interface NetnsHost {
  /** The namespace name (for `ip netns exec`). */
  ns: string;
  /** The host's IPv4 address inside the private /24. */
  ip: string;
}

export interface ExecResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Replaces process.env, as with child_process.spawn (default: inherit). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** 'pipe' to write to the process's stdin (default 'ignore'). */
  stdin?: 'ignore' | 'pipe';
}

export interface ExecOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** SIGKILL after this long; the result then has signal 'SIGKILL'. */
  timeoutMs?: number;
}

export interface NetnsNetwork {
  /** Random 6-hex-digit id shared by every name this network uses. */
  readonly runId: string;
  /** The private subnet, e.g. "10.23.181.0/24". */
  readonly subnet: string;
  /** The hub namespace holding the bridge. */
  readonly hub: string;
  readonly hosts: Readonly<Record<string, NetnsHost>>;
  /** Every namespace this network created (hosts and hub). */
  readonly namespaces: readonly string[];
  /** hosts[name], throwing on an unknown name. */
  host(name: string): NetnsHost;
  /** Runs a command inside a host's namespace and collects its output; never rejects on a nonzero exit. */
  exec(host: string, cmd: string, args: string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Starts `ip netns exec NS cmd ...args` (ip execs cmd in place, so the child's pid is cmd's). stdout/stderr are piped and recorded for waitForLine. */
  spawn(host: string, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** A temporary directory removed by cleanup(). */
  tempDir(label?: string): Promise<string>;
  /** Registers an async action that cleanup() runs (last registered first) before killing processes. */
  defer(fn: () => unknown): void;
  /** Kills every spawned process (SIGTERM, SIGKILL after 3 s), deletes the namespaces and temp dirs. Idempotent; never throws. */
  cleanup(): Promise<void>;
}

// ---------------------------------------------------------------------------
// iproute2

let ipBinCache: string | null | undefined;

/** Absolute path of iproute2's `ip`, or null (looks in PATH and the sbin dirs a non-login PATH may lack). */
export function findIpBin(): string | null {
  if (ipBinCache !== undefined) return ipBinCache;
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  ipBinCache = null;
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, 'ip');
    try {
      accessSync(p, fsConstants.X_OK);
      ipBinCache = p;
      break;
    } catch {
      // keep looking
    }
  }
  return ipBinCache;
}

function ipBin(): string {
  const bin = findIpBin();
  if (!bin) throw new Error("iproute2 'ip' not found");
  return bin;
}

/** Runs a program to completion, collecting output; rejects only when it cannot be started. */
function runProgram(bin: string, args: string[], opts: ExecOptions & { onChild?: (c: ChildProcess) => void } = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: opts.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    opts.onChild?.(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', (err) => {
      if (timer) clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** `ip ARGS`, throwing with ip's stderr on failure. */
async function ip(args: string[]): Promise<string> {
  const r = await runProgram(ipBin(), args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(' ')} failed (${r.code ?? r.signal}): ${r.stderr.trim()}`);
  return r.stdout;
}

async function listNetns(): Promise<string[]> {
  return parseNetnsList(await ip(['netns', 'list']));
}

function parseNetnsList(out: string): string[] {
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/** Kills (SIGKILL) whatever still runs inside a namespace; those are processes the harness started. */
async function killNetnsPids(ns: string): Promise<void> {
  const r = await runProgram(ipBin(), ['netns', 'pids', ns], { timeoutMs: 5000 }).catch(() => undefined);
  for (const pid of parsePids(r?.stdout ?? '')) killPid(pid);
}

function parsePids(out: string): number[] {
  return out
    .split(/\s+/)
    .filter((s) => /^\d+$/.test(s))
    .map(Number)
    .filter((p) => p > 1 && p !== process.pid);
}

function killPid(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// ---------------------------------------------------------------------------
// Support probe

let supportCache: Promise<NetnsSupport> | undefined;

/** Whether this machine can run the harness: Linux, root, iproute2, and a namespace can be made, entered and deleted. */
export function netnsSupport(): Promise<NetnsSupport> {
  supportCache ??= probeSupport();
  return supportCache;
}

async function probeSupport(): Promise<NetnsSupport> {
  if (process.platform !== 'linux') return { ok: false, reason: `network namespaces need Linux (platform ${process.platform})` };
  const uid = process.getuid?.();
  if (uid !== 0) return { ok: false, reason: `network namespaces need root (uid ${uid ?? 'unknown'})` };
  const bin = findIpBin();
  if (!bin) return { ok: false, reason: "iproute2 'ip' not found" };
  const ns = `${NETNS_PREFIX}${randomBytes(3).toString('hex')}-${process.pid}-probe`;
  try {
    const add = await runProgram(bin, ['netns', 'add', ns], { timeoutMs: 10_000 });
    if (add.code !== 0) return { ok: false, reason: `cannot create a network namespace: ${add.stderr.trim() || `ip exited ${add.code ?? add.signal}`}` };
    const enter = await runProgram(bin, ['netns', 'exec', ns, process.execPath, '-e', ''], { timeoutMs: 10_000 });
    if (enter.code !== 0) return { ok: false, reason: `cannot run a process in a network namespace: ${enter.stderr.trim() || `exit ${enter.code ?? enter.signal}`}` };
    const del = await runProgram(bin, ['netns', 'del', ns], { timeoutMs: 10_000 });
    if (del.code !== 0) return { ok: false, reason: `cannot delete a network namespace: ${del.stderr.trim()}` };
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot use network namespaces: ${(err as Error).message}` };
  } finally {
    spawnSync(bin, ['netns', 'del', ns], { stdio: 'ignore' });
  }
}

// ---------------------------------------------------------------------------
// Output tracking for spawned processes

interface OutputLog {
  label: string;
  /** Retained stdout lines; lines[0] has absolute index `base`. */
  lines: string[];
  base: number;
  partial: string;
  stderrTail: string;
  ended: boolean;
  endReason: string;
  events: EventEmitter;
  exited: Promise<void>;
}

const MAX_LINES = 10_000;
const STDERR_TAIL = 8192;
const logs = new WeakMap<ChildProcess, OutputLog>();
const debug = Boolean(process.env.DOPPEL_NETNS_DEBUG);

function isExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Starts recording a child's stdout lines and stderr tail (idempotent). */
function track(child: ChildProcess, label = `pid ${child.pid ?? '?'}`): OutputLog {
  const existing = logs.get(child);
  if (existing) return existing;
  const events = new EventEmitter();
  const log: OutputLog = {
    label,
    lines: [],
    base: 0,
    partial: '',
    stderrTail: '',
    ended: false,
    endReason: '',
    events,
    exited: isExited(child) ? Promise.resolve() : new Promise((resolve) => child.once('exit', () => resolve())),
  };
  logs.set(child, log);
  const pushLine = (line: string): void => {
    if (debug) process.stderr.write(`[${label}] ${line}\n`);
    log.lines.push(line);
    if (log.lines.length > MAX_LINES) {
      log.lines.shift();
      log.base++;
    }
    events.emit('line');
  };
  const end = (reason: string): void => {
    if (log.ended) return;
    if (log.partial !== '') {
      const rest = log.partial;
      log.partial = '';
      pushLine(rest);
    }
    log.ended = true;
    log.endReason = reason;
    events.emit('end');
  };
  const exitReason = (): string => `exited (${child.signalCode ?? `code ${child.exitCode ?? '?'}`})`;
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    const parts = (log.partial + d).split('\n');
    log.partial = parts.pop() ?? '';
    for (const p of parts) pushLine(p.endsWith('\r') ? p.slice(0, -1) : p);
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    if (debug) process.stderr.write(d.replace(/^(?=.)/gm, `[${label} stderr] `));
    log.stderrTail = (log.stderrTail + d).slice(-STDERR_TAIL);
  });
  child.once('error', (err) => {
    log.stderrTail += `\n[spawn error] ${err.message}`;
    end(`failed to start: ${err.message}`);
  });
  child.once('close', () => end(exitReason()));
  // A grandchild holding the pipes open must not keep waiters hanging after the child exits.
  child.once('exit', () => setTimeout(() => end(exitReason()), 250).unref());
  if (isExited(child) && (!child.stdout || child.stdout.destroyed)) end(exitReason());
  return log;
}

function parseLine(raw: string): unknown {
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

/**
 * Resolves with the first stdout line (JSON-parsed when it parses, else the raw
 * string) that satisfies predicate. Lines printed before the call count when
 * the child was started by NetnsNetwork.spawn (its output is recorded from the
 * start). Rejects with the stderr tail on timeout or when the child exits.
 */
export function waitForLine<T>(child: ChildProcess, predicate: (line: unknown, raw: string) => line is T, timeoutMs?: number): Promise<T>;
export function waitForLine(child: ChildProcess, predicate: (line: unknown, raw: string) => boolean, timeoutMs?: number): Promise<unknown>;
export function waitForLine(child: ChildProcess, predicate: (line: unknown, raw: string) => boolean, timeoutMs = 10_000): Promise<unknown> {
  const log = track(child);
  return new Promise((resolve, reject) => {
    if (!child.stdout) {
      reject(new Error(`${log.label} has no stdout pipe`));
      return;
    }
    let next = log.base;
    const started = Date.now();
    const describe = (what: string): Error => {
      const out = log.lines.slice(-5).join('\n');
      return new Error(
        `${log.label} ${what} before printing the expected line` +
          (out ? `\n--- stdout tail ---\n${out}` : '') +
          `\n--- stderr tail ---\n${log.stderrTail.trim().slice(-2000) || '(empty)'}`,
      );
    };
    const finish = (): void => {
      clearTimeout(timer);
      log.events.off('line', check);
      log.events.off('end', onEnd);
    };
    const check = (): boolean => {
      for (let i = Math.max(next, log.base); i < log.base + log.lines.length; i++) {
        next = i + 1;
        const raw = log.lines[i - log.base] ?? '';
        const value = parseLine(raw);
        let hit: boolean;
        try {
          hit = predicate(value, raw);
        } catch (err) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
          return true;
        }
        if (hit) {
          finish();
          resolve(value);
          return true;
        }
      }
      return false;
    };
    const onEnd = (): void => {
      if (check()) return;
      finish();
      reject(describe(log.endReason));
    };
    const timer = setTimeout(() => {
      if (check()) return;
      finish();
      reject(describe(`timed out after ${Date.now() - started} ms`));
    }, timeoutMs);
    if (check()) return;
    if (log.ended) {
      onEnd();
      return;
    }
    log.events.on('line', check);
    log.events.on('end', onEnd);
  });
}

/** SIGTERM, then SIGKILL after graceMs; resolves once the process is gone (or 1 s after SIGKILL). */
async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  const log = track(child);
  if (isExited(child) || child.pid === undefined) return;
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const exitedInTime = await Promise.race([
    log.exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
  ]);
  clearTimeout(timer);
  if (exitedInTime || isExited(child)) return;
  child.kill('SIGKILL');
  await Promise.race([log.exited, sleep(1000)]);
}

// ---------------------------------------------------------------------------
// Networks

const liveNetworks = new Set<Network>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const n of liveNetworks) n.cleanupSync();
  });
}

function ipToInt(a: string): number | null {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(a);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return parts.reduce((acc, p) => acc * 256 + p, 0);
}

/** IPv4 prefixes the root namespace routes (read only), so a random subnet can avoid them. */
async function rootRoutePrefixes(): Promise<Array<{ net: number; len: number }>> {
  const out = await ip(['-4', 'route', 'show', 'table', 'all']).catch(() => '');
  const prefixes: Array<{ net: number; len: number }> = [];
  for (const line of out.split('\n')) {
    for (const tok of line.trim().split(/\s+/).slice(0, 2)) {
      const m = /^([\d.]+)(?:\/(\d+))?$/.exec(tok);
      const n = m?.[1] ? ipToInt(m[1]) : null;
      if (m && n !== null) {
        prefixes.push({ net: n, len: m[2] === undefined ? 32 : Number(m[2]) });
        break;
      }
    }
  }
  return prefixes;
}

function overlaps(a: { net: number; len: number }, b: { net: number; len: number }): boolean {
  const len = Math.min(a.len, b.len);
  if (len === 0) return true;
  const shift = 2 ** (32 - len);
  return Math.floor(a.net / shift) === Math.floor(b.net / shift);
}

const HOST_NAME = /^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$/i;

class Network implements NetnsNetwork {
  readonly hosts: Record<string, NetnsHost> = {};
  readonly namespaces: string[] = [];
  readonly hub: string;
  private readonly children = new Set<ChildProcess>();
  private readonly dirs = new Set<string>();
  private readonly deferred: Array<() => unknown> = [];
  private cleaning: Promise<void> | undefined;

  constructor(
    readonly runId: string,
    readonly subnet: string,
    private readonly nsBase: string,
  ) {
    this.hub = `${nsBase}-hub`;
  }

  host(name: string): NetnsHost {
    const h = this.hosts[name];
    if (!h) throw new Error(`no host ${JSON.stringify(name)} in this network (hosts: ${Object.keys(this.hosts).join(', ')})`);
    return h;
  }

  async setUp(hostNames: string[], prefix24: string): Promise<void> {
    const bridge = `dpt${this.runId}br`;
    await ip(['netns', 'add', this.hub]);
    this.namespaces.push(this.hub);
    await ip(['-n', this.hub, 'link', 'set', 'lo', 'up']);
    await ip(['-n', this.hub, 'link', 'add', bridge, 'type', 'bridge', 'forward_delay', '0', 'stp_state', '0']);
    await ip(['-n', this.hub, 'link', 'set', bridge, 'up']);
    for (const [i, name] of hostNames.entries()) {
      const ns = `${this.nsBase}-h-${name}`;
      const hostIp = `${prefix24}.${i + 1}`;
      const veth = `dpt${this.runId}h${i}`;
      await ip(['netns', 'add', ns]);
      this.namespaces.push(ns);
      // Created inside the hub with its peer placed straight into the host namespace: never in the root namespace.
      await ip(['-n', this.hub, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', this.hub, 'link', 'set', veth, 'master', bridge]);
      await ip(['-n', this.hub, 'link', 'set', veth, 'up']);
      await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      await ip(['-n', ns, 'addr', 'add', `${hostIp}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      this.hosts[name] = { ns, ip: hostIp };
    }
  }

  exec(host: string, cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const { ns } = this.host(host);
    this.assertOpen();
    return runProgram(ipBin(), ['netns', 'exec', ns, cmd, ...args], {
      ...opts,
      onChild: (c) => {
        this.children.add(c);
        c.once('exit', () => this.children.delete(c));
      },
    });
  }

  spawn(host: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const { ns } = this.host(host);
    this.assertOpen();
    const child = spawn(ipBin(), ['netns', 'exec', ns, cmd, ...args], {
      env: opts.env,
      cwd: opts.cwd,
      stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    });
    track(child, `${host}:${path.basename(cmd)}`);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    // An 'error' event without a listener would crash the test process; track() records it for waitForLine.
    child.on('error', () => undefined);
    return child;
  }

  async tempDir(label = 'tmp'): Promise<string> {
    this.assertOpen();
    const dir = await mkdtemp(path.join(os.tmpdir(), `${NETNS_PREFIX}${this.runId}-${label.replace(/[^\w.-]/g, '_')}-`));
    this.dirs.add(dir);
    return dir;
  }

  defer(fn: () => unknown): void {
    this.deferred.push(fn);
  }

  cleanup(): Promise<void> {
    this.cleaning ??= this.doCleanup();
    return this.cleaning;
  }

  private assertOpen(): void {
    if (this.cleaning) throw new Error(`network ${this.runId} has been cleaned up`);
  }

  private async doCleanup(): Promise<void> {
    try {
      for (const fn of this.deferred.splice(0).reverse()) {
        try {
          await fn();
        } catch (err) {
          console.warn(`netns ${this.runId}: deferred cleanup failed: ${(err as Error).message}`);
        }
      }
      await Promise.all([...this.children].map((c) => stopChild(c, 3000).catch(() => undefined)));
      // Hosts first (their eth0 takes the hub's veth with it), the hub last.
      for (const ns of [...this.namespaces].reverse()) {
        try {
          await killNetnsPids(ns);
          await ip(['netns', 'del', ns]);
        } catch (err) {
          console.warn(`netns ${this.runId}: ${(err as Error).message}`);
        }
      }
      await Promise.all([...this.dirs].map((d) => rm(d, { recursive: true, force: true }).catch(() => undefined)));
      const left = await listNetns().catch(() => [] as string[]);
      const mine = left.filter((n) => this.namespaces.includes(n));
      if (mine.length > 0) console.warn(`netns ${this.runId}: namespaces left after cleanup: ${mine.join(', ')}`);
      const alive = [...this.children].filter((c) => !isExited(c));
      if (alive.length > 0) console.warn(`netns ${this.runId}: processes still alive after cleanup: ${alive.map((c) => c.pid).join(', ')}`);
    } catch (err) {
      console.warn(`netns ${this.runId}: cleanup failed: ${(err as Error).message}`);
    } finally {
      liveNetworks.delete(this);
    }
  }

  /** The 'exit' safety net: synchronous, SIGKILL only. */
  cleanupSync(): void {
    const bin = findIpBin();
    for (const c of this.children) if (!isExited(c)) c.kill('SIGKILL');
    if (bin) {
      for (const ns of [...this.namespaces].reverse()) {
        const pids = spawnSync(bin, ['netns', 'pids', ns], { encoding: 'utf8' });
        for (const pid of parsePids(pids.stdout ?? '')) killPid(pid);
        const del = spawnSync(bin, ['netns', 'del', ns], { encoding: 'utf8' });
        if (del.status !== 0 && !/No such file/i.test(del.stderr ?? '')) {
          process.stderr.write(`netns ${this.runId}: could not delete ${ns} at exit: ${(del.stderr ?? '').trim()}\n`);
        }
      }
    }
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
    liveNetworks.delete(this);
  }
}

/**
 * Creates one namespace per host name plus a hub namespace with a bridge,
 * each host wired to the bridge by a veth pair and given an address in a
 * private /24 (random 10.X.Y.0/24 unless opts.subnet, e.g. "10.99.1.0/24").
 * Host i gets .i+1. No default route. Call cleanup() when done.
 */
export async function createNetwork(hostNames: string[], opts: { subnet?: string } = {}): Promise<NetnsNetwork> {
  const support = await netnsSupport();
  if (!support.ok) throw new Error(support.reason);
  if (hostNames.length === 0) throw new Error('createNetwork needs at least one host name');
  if (hostNames.length > 250) throw new Error('createNetwork supports at most 250 hosts in one /24');
  const seen = new Set<string>();
  for (const h of hostNames) {
    if (!HOST_NAME.test(h)) throw new Error(`invalid host name ${JSON.stringify(h)}: use letters, digits, '-' and '_' (max 32)`);
    if (seen.has(h)) throw new Error(`duplicate host name ${JSON.stringify(h)}`);
    seen.add(h);
  }

  let prefix24: string;
  let runId: string;
  if (opts.subnet !== undefined) {
    const m = /^(10|172|192)\.(\d+)\.(\d+)\.0\/24$/.exec(opts.subnet);
    if (!m || ipToInt(`${m[1]}.${m[2]}.${m[3]}.0`) === null) throw new Error(`subnet must look like "10.X.Y.0/24", got ${JSON.stringify(opts.subnet)}`);
    prefix24 = `${m[1]}.${m[2]}.${m[3]}`;
    runId = randomBytes(3).toString('hex');
  } else {
    // X and Y come from the run id; avoid prefixes the root namespace routes so "unreachable from root" means something.
    const rootPrefixes = await rootRoutePrefixes();
    for (let attempt = 0; ; attempt++) {
      const bytes = randomBytes(3);
      runId = bytes.toString('hex');
      prefix24 = `10.${bytes[0] ?? 0}.${bytes[1] ?? 0}`;
      const mine = { net: ipToInt(`${prefix24}.0`) ?? 0, len: 24 };
      if (attempt >= 50 || !rootPrefixes.some((p) => p.len > 0 && overlaps(p, mine))) break;
    }
  }

  const net = new Network(runId, `${prefix24}.0/24`, `${NETNS_PREFIX}${runId}-${process.pid}`);
  liveNetworks.add(net);
  installExitHook();
  try {
    await net.setUp(hostNames, prefix24);
  } catch (err) {
    await net.cleanup();
    throw err;
  }
  return net;
}

/**
 * Removes namespaces (and their processes and temp dirs) left by earlier runs
 * of the harness that died without cleaning up: those named
 * `<prefix><rid>-<pid>-...` whose owning pid is gone. Namespaces of live
 * parallel runs are left alone unless opts.force. Returns the names removed.
 */
export async function cleanupStaleNetns(prefix: string = NETNS_PREFIX, opts: { force?: boolean } = {}): Promise<string[]> {
  if (!(await netnsSupport()).ok) return [];
  const mineLive = new Set<string>();
  for (const n of liveNetworks) for (const ns of n.namespaces) mineLive.add(ns);
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}([0-9a-f]{6})-(\\d+)-`);
  const removed: string[] = [];
  const staleRunIds = new Set<string>();
  let names: string[];
  try {
    names = await listNetns();
  } catch (err) {
    console.warn(`cleanupStaleNetns: ${(err as Error).message}`);
    return [];
  }
  for (const ns of names) {
    if (!ns.startsWith(prefix) || mineLive.has(ns)) continue;
    const m = pattern.exec(ns);
    const owner = m ? Number(m[2]) : undefined;
    const stale = opts.force || (owner !== undefined && (owner === process.pid || !pidAlive(owner)));
    if (!stale) continue;
    try {
      await killNetnsPids(ns);
      await ip(['netns', 'del', ns]);
      removed.push(ns);
      if (m?.[1]) staleRunIds.add(m[1]);
    } catch (err) {
      console.warn(`cleanupStaleNetns: ${(err as Error).message}`);
    }
  }
  if (staleRunIds.size > 0) {
    const tmp = os.tmpdir();
    const entries = await readdir(tmp).catch(() => [] as string[]);
    for (const e of entries) {
      const rid = e.startsWith(prefix) ? e.slice(prefix.length, prefix.length + 6) : '';
      if (staleRunIds.has(rid) && e[prefix.length + 6] === '-') await rm(path.join(tmp, e), { recursive: true, force: true }).catch(() => undefined);
    }
  }
  return removed;
}

// ---------------------------------------------------------------------------
// TCP probe and NATS

const FIRST_LINE_SCRIPT = `
const net = require('node:net');
const [host, port, ms] = process.argv.slice(1);
const end = Date.now() + Number(ms);
const attempt = () => {
  const s = net.connect({ host, port: Number(port) });
  let buf = '';
  s.setEncoding('utf8');
  s.setTimeout(Math.max(100, end - Date.now()), () => s.destroy(new Error('timeout')));
  s.on('data', (d) => {
    buf += d;
    const i = buf.indexOf('\\n');
    if (i >= 0) { process.stdout.write(buf.slice(0, i).replace(/\\r$/, '') + '\\n', () => process.exit(0)); s.destroy(); }
  });
  s.on('error', (e) => {
    s.destroy();
    if (Date.now() >= end) { process.stderr.write(e.message + '\\n'); process.exit(1); }
    setTimeout(attempt, 50);
  });
  s.on('end', () => { if (buf.indexOf('\\n') < 0) { process.stderr.write('closed without a line\\n'); process.exit(1); } });
};
attempt();
`;

/**
 * From inside fromHost's namespace, connects to ip:port (retrying until
 * timeoutMs) and resolves with the first line the server sends, e.g. NATS's
 * "INFO {...}". Rejects when no line arrives in time.
 */
export async function tcpFirstLine(net: NetnsNetwork, fromHost: string, ip: string, port: number, timeoutMs = 5000): Promise<string> {
  const r = await net.exec(fromHost, process.execPath, ['-e', FIRST_LINE_SCRIPT, ip, String(port), String(timeoutMs)], {
    timeoutMs: timeoutMs + 5000,
  });
  if (r.code !== 0) throw new Error(`no line from ${ip}:${port} seen from ${fromHost}: ${r.stderr.trim() || `exit ${r.code ?? r.signal}`}`);
  return r.stdout.split('\n')[0] ?? '';
}

export interface NetnsNatsHandle {
  url: string;
  ip: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Stops the server (SIGTERM, SIGKILL after 5 s) and removes its store. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Starts nats-server (NATS_SERVER_BIN or PATH) with JetStream and a temporary
 * store inside host's namespace, listening on the host's address. configText,
 * when given, is written to a config file passed with -c (command-line
 * -a/-p/-js/-sd still win). Resolves once a client inside the namespace has
 * received the server's INFO line.
 */
export async function startNatsIn(
  net: NetnsNetwork,
  host: string,
  opts: { configText?: string; port?: number; readyTimeoutMs?: number } = {},
): Promise<NetnsNatsHandle> {
  const { ip: hostIp } = net.host(host);
  const port = opts.port ?? 4222;
  const dir = await net.tempDir(`nats-${host}`);
  const storeDir = path.join(dir, 'store');
  const args = ['-a', hostIp, '-p', String(port), '-js', '-sd', storeDir];
  if (opts.configText !== undefined) {
    const conf = path.join(dir, 'nats.conf');
    await writeFile(conf, opts.configText);
    args.push('-c', conf);
  }
  const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
  const child = net.spawn(host, bin, args);
  const log = track(child);
  const timeoutMs = opts.readyTimeoutMs ?? 10_000;
  const died = new Promise<never>((_, reject) => {
    const onEnd = (): void =>
      reject(new Error(`nats-server in ${host} ${log.endReason} before accepting connections: ${log.stderrTail.trim().slice(-2000)}`));
    if (log.ended) onEnd();
    else log.events.once('end', onEnd);
  });
  died.catch(() => undefined);
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await stopChild(child, 5000);
      await rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };
  try {
    await Promise.race([tcpFirstLine(net, host, hostIp, port, timeoutMs), died]);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `nats://${hostIp}:${port}`, ip: hostIp, port, storeDir, process: child, stop };
}
