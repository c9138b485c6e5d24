/**
 * A QMP (QEMU Machine Protocol) client over a unix socket: the greeting, capability negotiation, commands
 * matched to their replies by `id`, and asynchronous events.
 *
 * QMP is newline-delimited JSON. QEMU answers non-OOB commands in order, but events interleave freely with
 * replies, and an event caused by a command can arrive *before* that command's reply (`cont` sends `RESUME`
 * first). So every event gets a sequence number and the client keeps a short history: a caller takes
 * `lastEventSeq` before a command and waits with `afterSeq`, and misses nothing.
 */
import { EventEmitter } from 'node:events';
import { connect, type Socket } from 'node:net';
import {
  DeadlineExceededError,
  DoppelError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  type ErrorCode,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';

/** A JSON object as parsed from the wire, not yet narrowed. */
export type JsonObject = Record<string, unknown>;

/** QEMU's version from the QMP greeting. */
export interface QmpVersion {
  major: number;
  minor: number;
  micro: number;
  /** The distribution's package string, e.g. "Debian 1:10.0.2+ds-2+deb13u1~bpo12+1". */
  package: string;
}

/** One asynchronous QMP event. */
export interface QmpEvent {
  /** The event's name, e.g. "RESUME", "STOP", "MIGRATION". */
  event: string;
  /** The event's payload; `{}` when QEMU sent none. */
  data: JsonObject;
  /** QEMU's wall-clock time of the event, in microseconds since the epoch. */
  timestampUs: number;
  /** This client's sequence number for the event: 1, 2, 3... in arrival order. */
  seq: number;
}

/** QEMU answered a command with an `error` reply. */
export class QmpError extends DoppelError {
  override name = 'QmpError';
  /** QMP's error class: GenericError, CommandNotFound, DeviceNotFound, DeviceNotActive, KVMMissingCap. */
  readonly qmpClass: string;
  /** QEMU's own description of the error. */
  readonly desc: string;
  readonly command: string;

  constructor(command: string, qmpClass: string, desc: string) {
    super(qmpErrorCode(qmpClass), `QMP ${command}: ${qmpClass}: ${desc}`);
    this.command = command;
    this.qmpClass = qmpClass;
    this.desc = desc;
  }
}

/**
 * QMP error classes carry little meaning since QEMU 2.x: nearly everything is GenericError ("not in the right
 * state", but also bad arguments). CommandNotFound means this QEMU lacks a feature, which is a precondition too.
 */
function qmpErrorCode(qmpClass: string): ErrorCode {
  return qmpClass === 'DeviceNotFound' ? 'NOT_FOUND' : 'FAILED_PRECONDITION';
}

/** The peer broke the protocol: not QMP, malformed JSON, an oversized line, a reply nobody asked for. */
export class QmpProtocolError extends UnavailableError {
  override name = 'QmpProtocolError';
}

/** The QMP connection is gone (QEMU exited, or the client was closed); pending commands fail with this. */
export class QmpClosedError extends UnavailableError {
  override name = 'QmpClosedError';
}

/** A command got no reply in time. The connection stays usable; a late reply is dropped. */
export class QmpTimeoutError extends DeadlineExceededError {
  override name = 'QmpTimeoutError';
}

export interface QmpConnectOptions {
  /** Bound on connecting, the greeting and capability negotiation together (default 10 s). */
  timeoutMs?: number;
  /** Default per-command timeout (default 30 s). */
  commandTimeoutMs?: number;
  /** A line (reply or event) longer than this is a protocol error (default 16 MiB). */
  maxLineBytes?: number;
  /** Events kept for `waitForEvent({ afterSeq })` (default 256). */
  eventHistory?: number;
  logger?: Logger;
}

export interface ExecuteOptions {
  /** Overrides the client's default command timeout. */
  timeoutMs?: number;
}

export interface WaitForEventOptions {
  /** Only events this accepts count. */
  predicate?: (event: QmpEvent) => boolean;
  /** Default 30 s; DeadlineExceededError after it. */
  timeoutMs?: number;
  /**
   * Also accept events already received with a sequence number above this (from the kept history): take
   * `lastEventSeq` before the command that causes the event.
   */
  afterSeq?: number;
  signal?: AbortSignal;
}

interface PendingCommand {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

interface ClientEvents {
  event: [QmpEvent];
  close: [Error];
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const DEFAULT_COMMAND_TIMEOUT_MS = 30_000;
const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
const DEFAULT_EVENT_HISTORY = 256;
const NEWLINE = 0x0a;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

/** Narrows a parsed greeting; null when it is not one. */
function parseGreeting(msg: JsonObject): { version: QmpVersion; capabilities: string[] } | null {
  const qmp = msg.QMP;
  if (!isObject(qmp)) return null;
  const version = isObject(qmp.version) ? qmp.version : {};
  const qemu = isObject(version.qemu) ? version.qemu : {};
  const caps = Array.isArray(qmp.capabilities) ? qmp.capabilities.filter((c): c is string => typeof c === 'string') : [];
  return {
    version: {
      major: num(qemu.major),
      minor: num(qemu.minor),
      micro: num(qemu.micro),
      package: typeof version.package === 'string' ? version.package : '',
    },
    capabilities: caps,
  };
}

/**
 * A connected QMP session. Make one with `QmpClient.connect(path)`. QEMU serves one QMP client per monitor at a
 * time: a second client's connection is accepted but gets no greeting until the first leaves.
 */
export class QmpClient {
  /** QEMU's version, from the greeting. */
  readonly version: QmpVersion;
  /** Capabilities QEMU offered in the greeting (e.g. "oob"); none are enabled. */
  readonly capabilities: readonly string[];
  readonly socketPath: string;
  /** Resolves with the reason once the connection is gone (never rejects). */
  readonly closed: Promise<Error>;

  private readonly socket: Socket;
  private readonly log: Logger;
  private readonly commandTimeoutMs: number;
  private readonly pending = new Map<number, PendingCommand>();
  private readonly emitter = new EventEmitter<ClientEvents>();
  private readonly history: QmpEvent[] = [];
  private readonly historySize: number;
  private nextId = 1;
  private seq = 0;
  private closeReason: Error | null = null;
  private resolveClosed!: (reason: Error) => void;

  private constructor(
    socketPath: string,
    socket: Socket,
    reader: LineReader,
    greeting: { version: QmpVersion; capabilities: string[] },
    opts: QmpConnectOptions,
    log: Logger,
  ) {
    this.socketPath = socketPath;
    this.socket = socket;
    this.version = greeting.version;
    this.capabilities = greeting.capabilities;
    this.log = log;
    this.commandTimeoutMs = opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    this.historySize = opts.eventHistory ?? DEFAULT_EVENT_HISTORY;
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    // Nobody has to listen for 'close'; the emitter must not throw on an 'error'-like event either.
    this.emitter.setMaxListeners(0);
    reader.onLine = (line) => this.onLine(line);
    reader.onError = (err) => this.fail(err);
    socket.on('close', () => this.fail(new QmpClosedError(`QMP connection to ${socketPath} closed: QEMU exited or dropped the monitor`)));
    socket.on('error', (err) => this.fail(new QmpClosedError(`QMP connection to ${socketPath} lost (${err.message}): QEMU exited or dropped the monitor`, { cause: err })));
  }

  /**
   * Connects to a QMP socket, reads the greeting and negotiates capabilities. A missing socket is a
   * NotFoundError and a refused one an UnavailableError, both naming the path; a peer that does not speak QMP is
   * a QmpProtocolError; no greeting in time is a DeadlineExceededError.
   */
  static async connect(socketPath: string, opts: QmpConnectOptions = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    const log = (opts.logger ?? silentLogger()).child({ component: 'qmp', socket: socketPath });
    const deadline = Date.now() + timeoutMs;
    const socket = await openSocket(socketPath, timeoutMs);
    const reader = new LineReader(opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    // Until the client takes over, a socket error only ends the handshake (through 'close'); unhandled it would crash.
    const onHandshakeError = (err: Error): void => log.debug({ err }, 'QMP socket error during the handshake');
    socket.on('error', onHandshakeError);
    try {
      const greetingLine = await reader.next(socket, deadline - Date.now(), 'a QMP greeting', socketPath);
      const greetingMsg = parseMessage(greetingLine, socketPath);
      const greeting = parseGreeting(greetingMsg);
      if (!greeting) throw new QmpProtocolError(`${socketPath} is not a QMP socket: its first message has no "QMP" greeting: ${preview(greetingLine)}`);
      socket.write(JSON.stringify({ execute: 'qmp_capabilities', id: 0 }) + '\n');
      // Events cannot come before capability negotiation ends, so the next line is the reply.
      const replyLine = await reader.next(socket, deadline - Date.now(), 'a reply to qmp_capabilities', socketPath);
      const reply = parseMessage(replyLine, socketPath);
      if (isObject(reply.error)) {
        const e = reply.error;
        throw new QmpError('qmp_capabilities', String(e.class), String(e.desc));
      }
      if (!('return' in reply)) throw new QmpProtocolError(`unexpected reply to qmp_capabilities from ${socketPath}: ${preview(replyLine)}`);
      const client = new QmpClient(socketPath, socket, reader, greeting, opts, log);
      socket.off('error', onHandshakeError);
      log.debug({ version: greeting.version }, 'QMP connected');
      reader.flush();
      if (socket.destroyed) client.fail(new QmpClosedError(`QMP connection to ${socketPath} closed: QEMU exited or dropped the monitor`));
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** Sequence number of the last event received (0 before any). */
  get lastEventSeq(): number {
    return this.seq;
  }

  /** False once the connection is gone. */
  get isOpen(): boolean {
    return this.closeReason === null;
  }

  /**
   * Runs one command. Resolves with its `return` value, unchecked: T is the caller's claim about the shape (use
   * the typed helpers where they exist). QmpError for an error reply, QmpTimeoutError, QmpClosedError.
   */
  execute<T = unknown>(command: string, args?: JsonObject, opts: ExecuteOptions = {}): Promise<T> {
    if (!command) return Promise.reject(new InvalidArgumentError('QMP command name is empty'));
    if (this.closeReason) return Promise.reject(new QmpClosedError(`QMP ${command}: ${this.closeReason.message}`, { cause: this.closeReason }));
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.commandTimeoutMs;
    const msg: JsonObject = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new QmpTimeoutError(`QMP ${command} on ${this.socketPath}: no reply within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject, timer });
      this.log.debug({ command, id }, 'QMP execute');
      this.socket.write(JSON.stringify(msg) + '\n');
    });
  }

  /** Listens for every event, or for the connection's end (with its reason). Returns a function that stops listening. */
  on(name: 'event', fn: (event: QmpEvent) => void): () => void;
  on(name: 'close', fn: (reason: Error) => void): () => void;
  on(name: 'event' | 'close', fn: ((event: QmpEvent) => void) | ((reason: Error) => void)): () => void {
    if (name === 'event') {
      const f = fn as (event: QmpEvent) => void;
      this.emitter.on('event', f);
      return () => this.emitter.off('event', f);
    }
    const f = fn as (reason: Error) => void;
    this.emitter.on('close', f);
    return () => this.emitter.off('close', f);
  }

  /**
   * Resolves with the first event named `name` that passes the predicate: from the history when `afterSeq` is
   * given, else from those still to come. DeadlineExceededError after the timeout, QmpClosedError if the
   * connection ends first, the signal's reason when aborted.
   */
  waitForEvent(name: string, opts: WaitForEventOptions = {}): Promise<QmpEvent> {
    const accept = (e: QmpEvent): boolean => e.event === name && (opts.predicate ? opts.predicate(e) : true);
    if (opts.afterSeq !== undefined) {
      const afterSeq = opts.afterSeq;
      const seen = this.history.find((e) => e.seq > afterSeq && accept(e));
      if (seen) return Promise.resolve(seen);
      const oldest = this.history[0];
      if (oldest && oldest.seq > afterSeq + 1 && this.seq > afterSeq) {
        this.log.warn({ event: name, afterSeq, oldest: oldest.seq }, 'QMP event history overflowed; an awaited event may be lost');
      }
    }
    if (this.closeReason) return Promise.reject(new QmpClosedError(`waiting for QMP event ${name}: ${this.closeReason.message}`, { cause: this.closeReason }));
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason instanceof Error ? opts.signal.reason : new Error(String(opts.signal.reason)));
    const timeoutMs = opts.timeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
    return new Promise<QmpEvent>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        offEvent();
        offClose();
        opts.signal?.removeEventListener('abort', onAbort);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new DeadlineExceededError(`no QMP event ${name} from ${this.socketPath} within ${timeoutMs} ms`));
      }, timeoutMs);
      const offEvent = this.on('event', (e) => {
        if (!accept(e)) return;
        cleanup();
        resolve(e);
      });
      const offClose = this.on('close', (reason) => {
        cleanup();
        reject(new QmpClosedError(`waiting for QMP event ${name}: ${reason.message}`, { cause: reason }));
      });
      const onAbort = (): void => {
        cleanup();
        const r: unknown = opts.signal?.reason;
        reject(r instanceof Error ? r : new Error(String(r)));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Closes the connection (QEMU keeps running); pending commands fail with QmpClosedError. Idempotent. */
  async close(): Promise<void> {
    if (this.closeReason) return;
    this.fail(new QmpClosedError(`QMP connection to ${this.socketPath} was closed by this client`));
    await this.closed;
  }

  /** `query-status`: the run state ("prelaunch", "running", "paused", "inmigrate", "postmigrate", ...). */
  async queryStatus(opts?: ExecuteOptions): Promise<QmpStatus> {
    const r = await this.execute<unknown>('query-status', undefined, opts);
    if (!isObject(r) || typeof r.status !== 'string') throw new QmpProtocolError(`query-status on ${this.socketPath}: unexpected reply`);
    return { status: r.status, running: r.running === true };
  }

  /** `query-kvm`: whether KVM is compiled in and usable (`present`) and in use by this VM (`enabled`). */
  async queryKvm(opts?: ExecuteOptions): Promise<{ enabled: boolean; present: boolean }> {
    const r = await this.execute<unknown>('query-kvm', undefined, opts);
    if (!isObject(r)) throw new QmpProtocolError(`query-kvm on ${this.socketPath}: unexpected reply`);
    return { enabled: r.enabled === true, present: r.present === true };
  }

  /**
   * `query-migrate`, narrowed to what the driver uses. `status` is absent on a VM that never migrated (QEMU
   * answers `{}`), reported here as 'none'.
   */
  async queryMigrate(opts?: ExecuteOptions): Promise<MigrationInfo> {
    const r = await this.execute<unknown>('query-migrate', undefined, opts);
    if (!isObject(r)) throw new QmpProtocolError(`query-migrate on ${this.socketPath}: unexpected reply`);
    const ram = isObject(r.ram) ? r.ram : undefined;
    const info: MigrationInfo = { status: typeof r.status === 'string' ? r.status : 'none', raw: r };
    if (ram) {
      info.ram = {
        transferred: num(ram.transferred),
        remaining: num(ram.remaining),
        total: num(ram.total),
        dirtySyncCount: num(ram['dirty-sync-count']),
        dirtyPagesRate: num(ram['dirty-pages-rate']),
        mbps: num(ram.mbps),
      };
    }
    if (typeof r['downtime'] === 'number') info.downtimeMs = r['downtime'];
    if (typeof r['total-time'] === 'number') info.totalTimeMs = r['total-time'];
    if (typeof r['error-desc'] === 'string') info.errorDesc = r['error-desc'];
    return info;
  }

  private onLine(line: Buffer): void {
    let msg: JsonObject;
    try {
      msg = parseMessage(line, this.socketPath);
    } catch (err) {
      this.fail(err instanceof Error ? err : new QmpProtocolError(String(err)));
      return;
    }
    if (typeof msg.event === 'string') {
      const ts = isObject(msg.timestamp) ? msg.timestamp : {};
      const event: QmpEvent = {
        event: msg.event,
        data: isObject(msg.data) ? msg.data : {},
        timestampUs: num(ts.seconds) * 1_000_000 + num(ts.microseconds),
        seq: ++this.seq,
      };
      this.history.push(event);
      if (this.history.length > this.historySize) this.history.shift();
      this.log.debug({ event: event.event, seq: event.seq }, 'QMP event');
      this.emitter.emit('event', event);
      return;
    }
    if (!('return' in msg) && !('error' in msg)) {
      this.log.warn({ line: preview(line) }, 'QMP message that is neither a reply nor an event; ignored');
      return;
    }
    let id = typeof msg.id === 'number' ? msg.id : undefined;
    if (id === undefined) {
      // QEMU could not parse a request far enough to read its id. It answers in order, so it is the oldest.
      id = this.pending.keys().next().value;
      if (id === undefined) {
        this.log.warn({ line: preview(line) }, 'QMP reply with no id and no command pending; ignored');
        return;
      }
    }
    const p = this.pending.get(id);
    if (!p) {
      this.log.debug({ id }, 'QMP reply to a command no longer waited for (timed out); dropped');
      return;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    if (isObject(msg.error)) {
      const e = msg.error;
      p.reject(new QmpError(p.command, typeof e.class === 'string' ? e.class : 'GenericError', typeof e.desc === 'string' ? e.desc : JSON.stringify(e)));
    } else if ('error' in msg) {
      p.reject(new QmpProtocolError(`QMP ${p.command}: malformed error reply: ${preview(line)}`));
    } else {
      p.resolve(msg.return);
    }
  }

  private fail(reason: Error): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    if (reason instanceof QmpProtocolError) this.log.warn({ err: reason }, 'QMP protocol error; connection dropped');
    else this.log.debug({ reason: reason.message }, 'QMP connection closed');
    this.socket.destroy();
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(new QmpClosedError(`QMP ${p.command}: ${reason.message}`, { cause: reason }));
    }
    this.emitter.emit('close', reason);
    this.resolveClosed(reason);
  }
}

export interface QmpStatus {
  status: string;
  running: boolean;
}

/** The part of `query-migrate` the driver uses; `raw` holds the whole reply. */
export interface MigrationInfo {
  /** "none" (never migrated), "setup", "active", "pre-switchover", "device", "completed", "failed", "cancelled", ... */
  status: string;
  ram?: {
    transferred: number;
    remaining: number;
    total: number;
    /** Dirty-bitmap sync rounds so far. */
    dirtySyncCount: number;
    /** Pages dirtied per second, as QEMU measures it. */
    dirtyPagesRate: number;
    mbps: number;
  };
  downtimeMs?: number;
  totalTimeMs?: number;
  errorDesc?: string;
  raw: JsonObject;
}

/** Opens the unix socket, naming the path in every failure. */
function openSocket(socketPath: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DeadlineExceededError(`connecting to QMP socket ${socketPath} took over ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(socketError(socketPath, err));
    });
  });
}

function socketError(socketPath: string, err: NodeJS.ErrnoException): DoppelError {
  switch (err.code) {
    case 'ENOENT':
      return new NotFoundError(`QMP socket ${socketPath} does not exist (QEMU not running, or a wrong path)`, { cause: err });
    case 'ECONNREFUSED':
      return new UnavailableError(`QMP socket ${socketPath} refused the connection (QEMU exited and left the socket file)`, { cause: err });
    case 'ENOTSOCK':
      return new InvalidArgumentError(`${socketPath} is not a socket`, { cause: err });
    case 'EACCES':
    case 'EPERM':
      return new UnavailableError(`no permission to connect to QMP socket ${socketPath}`, { cause: err });
    default:
      return new UnavailableError(`cannot connect to QMP socket ${socketPath}: ${err.message}`, { cause: err });
  }
}

function parseMessage(line: Buffer, socketPath: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.toString('utf8'));
  } catch (err) {
    throw new QmpProtocolError(`${socketPath} sent a line that is not JSON (not a QMP socket?): ${preview(line)}`, { cause: err });
  }
  if (!isObject(parsed)) throw new QmpProtocolError(`${socketPath} sent JSON that is not an object: ${preview(line)}`);
  return parsed;
}

function preview(line: Buffer | string): string {
  const s = typeof line === 'string' ? line : line.subarray(0, 200).toString('utf8');
  return JSON.stringify(s.length > 160 ? s.slice(0, 160) + '…' : s.trimEnd());
}

/**
 * Splits a byte stream into lines, refusing a line over `maxLineBytes` (a runaway or hostile peer must not grow
 * our memory without bound). Before the client exists, lines queue for `next()`; after, they go to `onLine`.
 */
class LineReader {
  onLine: ((line: Buffer) => void) | null = null;
  onError: ((err: Error) => void) | null = null;
  private chunks: Buffer[] = [];
  private partialBytes = 0;
  private readonly queued: Buffer[] = [];
  private waiter: (() => void) | null = null;
  private error: Error | null = null;

  constructor(private readonly maxLineBytes: number) {}

  push(chunk: Buffer): void {
    if (this.error) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl < 0) break;
      const piece = chunk.subarray(start, nl);
      const line = this.chunks.length === 0 ? piece : Buffer.concat([...this.chunks, piece]);
      this.chunks = [];
      this.partialBytes = 0;
      start = nl + 1;
      if (line.length > this.maxLineBytes) return this.setError(this.tooLong(line.length));
      if (line.length > 0 && !(line.length === 1 && line[0] === 0x0d)) this.deliver(line);
      if (this.error) return;
    }
    if (start < chunk.length) {
      // Copy: the socket may reuse its buffer, and a subarray would pin the whole chunk anyway.
      const rest = Buffer.from(chunk.subarray(start));
      this.partialBytes += rest.length;
      if (this.partialBytes > this.maxLineBytes) return this.setError(this.tooLong(this.partialBytes));
      this.chunks.push(rest);
    }
  }

  /** Before the client takes over: the next line, or an error naming what did not come from where. */
  async next(socket: Socket, timeoutMs: number, what: string, socketPath: string): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.error) throw this.error;
      const line = this.queued.shift();
      if (line) return line;
      if (socket.destroyed || socket.readableEnded) {
        throw new QmpProtocolError(`${socketPath} closed the connection before sending ${what} (not a QMP socket, or QEMU exited)`);
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new DeadlineExceededError(`no ${what} from ${socketPath} within ${timeoutMs} ms (not a QMP socket, or another client holds the monitor)`);
      }
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiter = null;
          socket.off('close', done);
          socket.off('end', done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.waiter = done;
        socket.once('close', done);
        socket.once('end', done);
      });
    }
  }

  /** Hands lines that arrived with the capabilities reply to the client. */
  flush(): void {
    while (this.onLine && this.queued.length > 0) {
      const line = this.queued.shift();
      if (line) this.onLine(line);
    }
  }

  private deliver(line: Buffer): void {
    if (this.onLine && this.queued.length === 0) {
      this.onLine(line);
      return;
    }
    this.queued.push(line);
    this.waiter?.();
    this.flush();
  }

  private tooLong(bytes: number): QmpProtocolError {
    return new QmpProtocolError(`QMP line of ${bytes} bytes exceeds the ${this.maxLineBytes}-byte limit`);
  }

  private setError(err: Error): void {
    this.error = err;
    this.chunks = [];
    this.waiter?.();
    this.onError?.(err);
  }
}
