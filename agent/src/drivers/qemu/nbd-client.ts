/**
 * A small NBD client: newstyle fixed handshake, NBD_OPT_GO, structured replies, meta contexts, NBD_CMD_READ,
 * NBD_CMD_WRITE, NBD_CMD_FLUSH, NBD_CMD_BLOCK_STATUS, NBD_CMD_WRITE_ZEROES. Requests pipeline and complete in any
 * order, matched by cookie.
 *
 * The protocol is https://github.com/NetworkBlockDevice/nbd/blob/master/doc/proto.md; only what QEMU's servers
 * (qemu-nbd and a running QEMU's `nbd-server-start`) need is here: no TLS, no extended headers, no oldstyle
 * servers.
 */
import { connect, type Socket } from 'node:net';
import {
  DeadlineExceededError,
  DoppelError,
  type ErrorCode,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';

// ---- protocol constants ----

const NBDMAGIC = 0x4e42444d41474943n;
const IHAVEOPT = 0x49484156454f5054n;
const OPT_REPLY_MAGIC = 0x0003e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

const FLAG_FIXED_NEWSTYLE = 1;
const FLAG_NO_ZEROES = 2;

const OPT_GO = 7;
const OPT_STRUCTURED_REPLY = 8;
const OPT_SET_META_CONTEXT = 10;

const REP_ACK = 1;
const REP_INFO = 3;
const REP_META_CONTEXT = 4;
const REP_ERR_BIT = 0x80000000;
const REP_ERR_UNSUP = (REP_ERR_BIT | 1) >>> 0;
const REP_ERR_UNKNOWN = (REP_ERR_BIT | 6) >>> 0;

const INFO_EXPORT = 0;
const INFO_BLOCK_SIZE = 3;

const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;
const CMD_WRITE_ZEROES = 6;
const CMD_BLOCK_STATUS = 7;

const TFLAG_READ_ONLY = 1 << 1;
const TFLAG_SEND_FLUSH = 1 << 2;
const TFLAG_SEND_FUA = 1 << 3;
const TFLAG_SEND_WRITE_ZEROES = 1 << 6;

const CMD_FLAG_FUA = 1;

const REPLY_FLAG_DONE = 1;
const REPLY_TYPE_NONE = 0;
const REPLY_TYPE_OFFSET_DATA = 1;
const REPLY_TYPE_OFFSET_HOLE = 2;
const REPLY_TYPE_BLOCK_STATUS = 5;
const REPLY_TYPE_ERROR_BIT = 1 << 15;
const REPLY_TYPE_ERROR_OFFSET = REPLY_TYPE_ERROR_BIT | 2;

/** base:allocation flags. */
export const NBD_STATE_HOLE = 1;
export const NBD_STATE_ZERO = 2;
/** qemu:dirty-bitmap:NAME flag: the range is dirty. */
export const NBD_STATE_DIRTY = 1;

/** QEMU's own cap on a request's payload (NBD_MAX_BUFFER_SIZE). */
const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;
/** Reads and writes are cut into requests of at most this (large enough to stream, small enough to pipeline). */
const READ_CHUNK_BYTES = 2 * 1024 * 1024;
/** Requests in flight on one connection. */
const MAX_IN_FLIGHT = 8;
/** A block-status reply bigger than this is a protocol error (QEMU sends at most 2^20 extents a chunk). */
const MAX_STATUS_PAYLOAD = 16 * 1024 * 1024;
/** Option replies (export descriptions, error messages) bigger than this are a protocol error. */
const MAX_OPTION_REPLY = 64 * 1024;
/** Status queries cover at most this much per request (the length field is 32 bits). */
const MAX_STATUS_LENGTH = 2 ** 31;

const ERRNO: Record<number, string> = { 1: 'EPERM', 5: 'EIO', 12: 'ENOMEM', 22: 'EINVAL', 28: 'ENOSPC', 75: 'EOVERFLOW', 95: 'ENOTSUP', 108: 'ESHUTDOWN' };

// ---- errors ----

/** The peer broke the NBD protocol (bad magic, an unexpected reply, a short read); the connection is dropped. */
export class NbdProtocolError extends UnavailableError {
  override name = 'NbdProtocolError';
}

/** The connection is gone; pending requests fail with this. */
export class NbdClosedError extends UnavailableError {
  override name = 'NbdClosedError';
}

/** The server refused one request with an errno; the connection stays usable. */
export class NbdRequestError extends DoppelError {
  override name = 'NbdRequestError';
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(errnoCode(errno), message);
    this.errno = errno;
  }
}

function errnoCode(errno: number): ErrorCode {
  if (errno === 22 || errno === 75) return 'INVALID_ARGUMENT';
  if (errno === 28 || errno === 12) return 'RESOURCE_EXHAUSTED';
  if (errno === 1) return 'PERMISSION_DENIED';
  if (errno === 95) return 'FAILED_PRECONDITION';
  return 'UNAVAILABLE';
}

// ---- a byte queue for the socket ----

class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  available = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.available += b.length;
  }

  /** The next n bytes (n <= available), as a view when they sit in one chunk, else a copy. */
  take(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    this.copyTo(out, 0, n);
    return out;
  }

  /** Moves up to n bytes into target[at..]; returns how many it moved. */
  copyTo(target: Buffer, at: number, n: number): number {
    let done = 0;
    while (done < n && this.available > 0) {
      const c = this.chunks[0]!;
      const k = Math.min(n - done, c.length - this.head);
      c.copy(target, at + done, this.head, this.head + k);
      done += k;
      this.advance(k);
    }
    return done;
  }

  /** Drops up to n bytes; returns how many. */
  skip(n: number): number {
    let done = 0;
    while (done < n && this.available > 0) {
      const k = Math.min(n - done, this.chunks[0]!.length - this.head);
      done += k;
      this.advance(k);
    }
    return done;
  }

  private advance(n: number): void {
    this.head += n;
    this.available -= n;
    while (this.chunks.length > 0 && this.head >= this.chunks[0]!.length) {
      this.head -= this.chunks[0]!.length;
      this.chunks.shift();
    }
  }
}

// ---- the client ----

/** One extent of a block-status reply. */
export interface NbdExtent {
  offset: number;
  length: number;
  flags: number;
}

export interface NbdConnectOptions {
  /** The server's unix socket. */
  socketPath: string;
  /** Default '' (qemu-nbd's default export). */
  exportName?: string;
  /** Meta contexts to negotiate ("base:allocation", "qemu:dirty-bitmap:NAME"); each must exist. */
  metaContexts?: string[];
  /** Bound on connecting and the handshake (default 10 s). */
  timeoutMs?: number;
  /** Per-request bound (default 60 s); after it the connection is dropped (replies cannot be resynchronised). */
  requestTimeoutMs?: number;
  logger?: Logger;
}

interface Pending {
  cookie: number;
  what: string;
  type: number;
  offset: number;
  length: number;
  /** READ: where the data goes. */
  into?: Buffer;
  intoAt?: number;
  /** READ: bytes covered so far by data and hole chunks. */
  covered: number;
  /** BLOCK_STATUS: the context whose extents are wanted, and what came. */
  contextId?: number;
  extents?: NbdExtent[];
  error: NbdRequestError | null;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | null;
}

/** Where the reply parser is: each state but `data` waits for a fixed number of bytes. */
type RxState =
  | { kind: 'magic' }
  | { kind: 'simple' }
  | { kind: 'structured' }
  | { kind: 'dataOffset'; p: Pending; flags: number; dataLength: number }
  | { kind: 'data'; p: Pending; at: number; left: number; done: boolean }
  | { kind: 'payload'; p: Pending; type: number; flags: number; length: number };

/**
 * An NBD connection to one export: `NbdClient.connect()`, then `read`, `write`, `flush`, `blockStatus`,
 * `writeZeroes`, `close`.
 * Requests pipeline (up to MAX_IN_FLIGHT in flight) and complete in any order, matched by cookie.
 */
export class NbdClient {
  readonly socketPath: string;
  readonly exportName: string;
  /** Export size in bytes. */
  readonly size: number;
  readonly readOnly: boolean;
  readonly canWriteZeroes: boolean;
  /** The server takes NBD_CMD_FLUSH (without it, writes are durable when acknowledged or flush is a no-op). */
  readonly canFlush: boolean;
  /** The server honours NBD_CMD_FLAG_FUA on writes. */
  readonly canFua: boolean;
  /** The server's largest request payload. */
  readonly maxPayload: number;
  /** Negotiated meta contexts: name → id. */
  readonly contexts: ReadonlyMap<string, number>;
  readonly structured: boolean;

  private readonly socket: Socket;
  private readonly rx: ByteQueue;
  private readonly requestTimeoutMs: number;
  private readonly log: Logger;
  private readonly pending = new Map<number, Pending>();
  private readonly waiting: (() => void)[] = [];
  private readonly idle: (() => void)[] = [];
  private state: RxState = { kind: 'magic' };
  private nextCookie = 1;
  private closeReason: Error | null = null;

  private constructor(
    socket: Socket,
    rx: ByteQueue,
    info: { exportName: string; size: number; flags: number; maxPayload: number; contexts: Map<string, number>; structured: boolean },
    opts: NbdConnectOptions,
    log: Logger,
  ) {
    this.socket = socket;
    this.rx = rx;
    this.socketPath = opts.socketPath;
    this.exportName = info.exportName;
    this.size = info.size;
    this.readOnly = (info.flags & TFLAG_READ_ONLY) !== 0;
    this.canWriteZeroes = (info.flags & TFLAG_SEND_WRITE_ZEROES) !== 0;
    this.canFlush = (info.flags & TFLAG_SEND_FLUSH) !== 0;
    this.canFua = (info.flags & TFLAG_SEND_FUA) !== 0;
    this.maxPayload = info.maxPayload;
    this.contexts = info.contexts;
    this.structured = info.structured;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 60_000;
    this.log = log;
  }

  /**
   * Connects and negotiates. NotFoundError when the socket or the export is missing, or a meta context is not
   * offered (a bitmap that is not exported); NbdProtocolError for a peer that is not a fixed-newstyle NBD server;
   * DeadlineExceededError when the handshake does not finish in time.
   */
  static async connect(opts: NbdConnectOptions): Promise<NbdClient> {
    const exportName = opts.exportName ?? '';
    const metaContexts = opts.metaContexts ?? [];
    if (Buffer.byteLength(exportName) > 4096) throw new InvalidArgumentError(`NBD export name is over 4096 bytes`);
    for (const c of metaContexts) if (!c || Buffer.byteLength(c) > 4096) throw new InvalidArgumentError(`NBD meta context ${JSON.stringify(c)} is empty or over 4096 bytes`);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const log = (opts.logger ?? silentLogger()).child({ component: 'nbd', socket: opts.socketPath, export: exportName });
    const where = `NBD export ${JSON.stringify(exportName)} at ${opts.socketPath}`;
    const socket = await openSocket(opts.socketPath, timeoutMs);
    const hs = new Handshake(socket, where, Date.now() + timeoutMs);
    try {
      const info = await hs.run(exportName, metaContexts);
      const client = new NbdClient(socket, hs.rx, { exportName, ...info }, opts, log);
      hs.detach();
      socket.on('data', (b: Buffer) => client.onData(b));
      socket.on('close', () => client.fail(new NbdClosedError(`${where}: the connection closed`)));
      socket.on('error', (err) => client.fail(new NbdClosedError(`${where}: ${err.message}`, { cause: err })));
      if (hs.rx.available > 0) client.onData(Buffer.alloc(0));
      if (socket.destroyed) client.fail(new NbdClosedError(`${where}: the connection closed`));
      log.debug({ size: info.size, contexts: [...info.contexts.keys()] }, 'NBD connected');
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    }
  }

  /** False once the connection is gone. */
  get isOpen(): boolean {
    return this.closeReason === null;
  }

  /** Reads [offset, offset + length) into `into` at `at`. Holes read as zeros. */
  async read(offset: number, length: number, into: Buffer, at = 0): Promise<void> {
    this.checkRange(offset, length, 'read');
    if (at < 0 || at + length > into.length) throw new InvalidArgumentError(`NBD read of ${length} bytes does not fit a ${into.length}-byte buffer at ${at}`);
    const step = Math.min(READ_CHUNK_BYTES, this.maxPayload);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; done += step) {
      const n = Math.min(step, length - done);
      parts.push(this.request({ type: CMD_READ, offset: offset + done, length: n, into, intoAt: at + done, what: `read of ${n} bytes at ${offset + done}` }));
    }
    await settleAll(parts);
  }

  /**
   * Block status of [offset, offset + length) in a negotiated meta context, as extents covering the range in
   * order. The server may answer for a prefix only; this asks again from where it stopped.
   */
  async blockStatus(context: string, offset: number, length: number): Promise<NbdExtent[]> {
    const id = this.contexts.get(context);
    if (id === undefined) throw new FailedPreconditionError(`NBD block status: meta context ${context} was not negotiated on ${this.exportName} (${this.socketPath})`);
    this.checkRange(offset, length, 'block status');
    const out: NbdExtent[] = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const n = Math.min(end - pos, MAX_STATUS_LENGTH);
      const extents: NbdExtent[] = [];
      await this.request({ type: CMD_BLOCK_STATUS, offset: pos, length: n, contextId: id, extents, what: `block status of ${n} bytes at ${pos}` });
      if (extents.length === 0 || extents[0]!.length === 0) throw new NbdProtocolError(`NBD block status at ${pos} on ${this.exportName}: no progress for ${context}`);
      for (const e of extents) {
        if (pos >= end) break;
        const len = Math.min(e.length, end - pos);
        out.push({ offset: pos, length: len, flags: e.flags });
        pos += len;
      }
    }
    return out;
  }

  /**
   * Writes `data` at `offset` (a writable export), cut into requests of at most the server's largest payload;
   * resolves once the server acknowledged every part. The caller must not change `data` before then (the socket
   * keeps a reference until it is sent). `fua` asks for each part to be durable before its reply (when the
   * server offers it; otherwise call flush()).
   */
  async write(offset: number, data: Buffer, opts: { fua?: boolean } = {}): Promise<void> {
    if (this.readOnly) throw new FailedPreconditionError(`NBD export ${this.exportName} at ${this.socketPath} is read-only`);
    this.checkRange(offset, data.length, 'write');
    const flags = opts.fua && this.canFua ? CMD_FLAG_FUA : 0;
    const step = Math.min(READ_CHUNK_BYTES, this.maxPayload);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < data.length; done += step) {
      const n = Math.min(step, data.length - done);
      parts.push(this.request({ type: CMD_WRITE, flags, offset: offset + done, length: n, payload: data.subarray(done, done + n), what: `write of ${n} bytes at ${offset + done}` }));
    }
    await settleAll(parts);
  }

  /**
   * NBD_CMD_FLUSH: every write the server acknowledged before this is durable when it resolves. A no-op on a
   * server that does not offer flush.
   */
  async flush(): Promise<void> {
    if (this.readOnly || !this.canFlush) return;
    await this.request({ type: CMD_FLUSH, offset: 0, length: 0, what: 'flush' });
  }

  /** Writes zeros over [offset, offset + length) (a writable export that supports it). */
  async writeZeroes(offset: number, length: number): Promise<void> {
    if (this.readOnly) throw new FailedPreconditionError(`NBD export ${this.exportName} at ${this.socketPath} is read-only`);
    if (!this.canWriteZeroes) throw new FailedPreconditionError(`NBD export ${this.exportName} at ${this.socketPath} does not take WRITE_ZEROES`);
    this.checkRange(offset, length, 'write zeroes');
    const parts: Promise<void>[] = [];
    for (let done = 0; done < length; done += MAX_STATUS_LENGTH) {
      const n = Math.min(MAX_STATUS_LENGTH, length - done);
      parts.push(this.request({ type: CMD_WRITE_ZEROES, offset: offset + done, length: n, what: `write zeroes of ${n} bytes at ${offset + done}` }));
    }
    await settleAll(parts);
  }

  /** Sends NBD_CMD_DISC once pending requests are answered, and closes. Idempotent. */
  async close(): Promise<void> {
    while (this.pending.size > 0 && !this.closeReason) await new Promise<void>((resolve) => this.idle.push(resolve));
    if (this.closeReason) return;
    const closed = new Promise<void>((resolve) => this.socket.once('close', () => resolve()));
    this.socket.end(requestHeader(CMD_DISC, 0, 0, 0));
    this.fail(new NbdClosedError(`NBD connection to ${this.exportName} at ${this.socketPath} was closed by this client`), false);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise<void>((resolve) => (timer = setTimeout(resolve, 2_000)))]);
    clearTimeout(timer);
    this.socket.destroy();
  }

  private checkRange(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0 || offset + length > this.size) {
      throw new InvalidArgumentError(`NBD ${what} of [${offset}, +${length}) is outside export ${JSON.stringify(this.exportName)} (${this.size} bytes)`);
    }
  }

  private async request(r: { type: number; flags?: number; offset: number; length: number; what: string; payload?: Buffer; into?: Buffer; intoAt?: number; contextId?: number; extents?: NbdExtent[] }): Promise<void> {
    while (this.pending.size >= MAX_IN_FLIGHT && !this.closeReason) await new Promise<void>((resolve) => this.waiting.push(resolve));
    if (this.closeReason) throw new NbdClosedError(`NBD ${r.what} on ${this.exportName}: ${this.closeReason.message}`, { cause: this.closeReason });
    const cookie = this.nextCookie++;
    const { payload, flags, ...rest } = r;
    return new Promise<void>((resolve, reject) => {
      const p: Pending = { cookie, covered: 0, error: null, resolve, reject, timer: null, ...rest };
      p.timer = setTimeout(() => {
        this.fail(new DeadlineExceededError(`NBD ${r.what} on ${this.exportName} at ${this.socketPath}: no reply within ${this.requestTimeoutMs} ms`));
      }, this.requestTimeoutMs);
      this.pending.set(cookie, p);
      this.socket.write(requestHeader(r.type, cookie, r.offset, r.length, flags ?? 0));
      if (payload) this.socket.write(payload);
    });
  }

  private finish(p: Pending, err: Error | null): void {
    if (p.timer) clearTimeout(p.timer);
    this.pending.delete(p.cookie);
    if (err) p.reject(err);
    else p.resolve();
    this.waiting.shift()?.();
    if (this.pending.size === 0) for (const w of this.idle.splice(0)) w();
  }

  private onData(b: Buffer): void {
    this.rx.push(b);
    try {
      while (this.closeReason === null && this.step());
    } catch (err) {
      this.fail(err instanceof Error ? err : new NbdProtocolError(String(err)));
    }
  }

  /** Bytes the current state waits for before it can run (0 for streamed data). */
  private need(): number {
    switch (this.state.kind) {
      case 'magic':
        return 4;
      case 'simple':
        return 12;
      case 'structured':
        return 16;
      case 'dataOffset':
        return 8;
      case 'data':
        return 0;
      case 'payload':
        return this.state.length;
    }
  }

  /** One parsing step; false when it needs more bytes. */
  private step(): boolean {
    const s = this.state;
    const rx = this.rx;
    if (s.kind === 'data') {
      if (s.left > 0) {
        if (rx.available === 0) return false;
        const n = rx.copyTo(s.p.into!, s.at, s.left);
        s.at += n;
        s.left -= n;
        if (s.left > 0) return false;
      }
      this.state = { kind: 'magic' };
      if (s.done) this.doneRead(s.p);
      return true;
    }
    const need = this.need();
    if (rx.available < need) return false;
    const buf = need > 0 ? rx.take(need) : Buffer.alloc(0);
    switch (s.kind) {
      case 'magic': {
        const magic = buf.readUInt32BE(0);
        if (magic === SIMPLE_REPLY_MAGIC) this.state = { kind: 'simple' };
        else if (magic === STRUCTURED_REPLY_MAGIC) this.state = { kind: 'structured' };
        else throw new NbdProtocolError(`NBD reply from ${this.socketPath} has a bad magic 0x${magic.toString(16)}`);
        return true;
      }
      case 'simple':
        this.simpleReply(buf);
        return true;
      case 'structured':
        this.structuredChunk(buf);
        return true;
      case 'dataOffset': {
        const offset = Number(buf.readBigUInt64BE(0));
        const p = s.p;
        if (offset < p.offset || offset + s.dataLength > p.offset + p.length) {
          throw new NbdProtocolError(`NBD data chunk [${offset}, +${s.dataLength}) is outside its ${p.what}`);
        }
        p.covered += s.dataLength;
        this.state = { kind: 'data', p, at: p.intoAt! + (offset - p.offset), left: s.dataLength, done: (s.flags & REPLY_FLAG_DONE) !== 0 };
        return true;
      }
      case 'payload':
        this.state = { kind: 'magic' };
        this.structuredPayload(s.p, s.type, s.flags, buf);
        return true;
    }
  }

  private simpleReply(h: Buffer): void {
    const errno = h.readUInt32BE(0);
    const p = this.lookup(h.readBigUInt64BE(4));
    this.state = { kind: 'magic' };
    if (errno !== 0) {
      this.finish(p, this.requestError(p, errno, ''));
    } else if (p.type === CMD_READ) {
      if (this.structured) throw new NbdProtocolError(`NBD server at ${this.socketPath} sent a simple reply to a read after structured replies were negotiated`);
      p.covered = p.length;
      this.state = { kind: 'data', p, at: p.intoAt!, left: p.length, done: true };
    } else if (p.type === CMD_BLOCK_STATUS) {
      throw new NbdProtocolError(`NBD server at ${this.socketPath} sent a simple reply to block status`);
    } else {
      this.finish(p, null);
    }
  }

  private structuredChunk(h: Buffer): void {
    const flags = h.readUInt16BE(0);
    const type = h.readUInt16BE(2);
    const p = this.lookup(h.readBigUInt64BE(4));
    const length = h.readUInt32BE(12);
    if (type === REPLY_TYPE_OFFSET_DATA) {
      if (p.type !== CMD_READ || length < 8) throw new NbdProtocolError(`NBD server at ${this.socketPath} sent a data chunk of ${length} bytes to a ${p.what}`);
      this.state = { kind: 'dataOffset', p, flags, dataLength: length - 8 };
      return;
    }
    const max = type === REPLY_TYPE_BLOCK_STATUS ? MAX_STATUS_PAYLOAD : MAX_OPTION_REPLY;
    if (length > max) throw new NbdProtocolError(`NBD reply chunk of type ${type} with ${length} bytes from ${this.socketPath}`);
    this.state = { kind: 'payload', p, type, flags, length };
  }

  private structuredPayload(p: Pending, type: number, flags: number, payload: Buffer): void {
    if (type === REPLY_TYPE_NONE) {
      if (payload.length !== 0) throw new NbdProtocolError(`NBD NONE chunk with ${payload.length} bytes from ${this.socketPath}`);
    } else if (type === REPLY_TYPE_OFFSET_HOLE) {
      if (p.type !== CMD_READ || payload.length !== 12) throw new NbdProtocolError(`NBD hole chunk of ${payload.length} bytes to a ${p.what}`);
      const offset = Number(payload.readBigUInt64BE(0));
      const size = payload.readUInt32BE(8);
      if (offset < p.offset || offset + size > p.offset + p.length) throw new NbdProtocolError(`NBD hole chunk [${offset}, +${size}) is outside its ${p.what}`);
      const at = p.intoAt! + (offset - p.offset);
      p.into!.fill(0, at, at + size);
      p.covered += size;
    } else if (type === REPLY_TYPE_BLOCK_STATUS) {
      if (p.type !== CMD_BLOCK_STATUS || payload.length < 4 || (payload.length - 4) % 8 !== 0) throw new NbdProtocolError(`NBD block status chunk of ${payload.length} bytes to a ${p.what}`);
      // Other contexts' extents (none are asked for in one request here) are ignored.
      if (payload.readUInt32BE(0) === p.contextId) {
        let off = p.offset + p.extents!.reduce((sum, e) => sum + e.length, 0);
        for (let i = 4; i < payload.length; i += 8) {
          const length = payload.readUInt32BE(i);
          p.extents!.push({ offset: off, length, flags: payload.readUInt32BE(i + 4) });
          off += length;
        }
      }
    } else if ((type & REPLY_TYPE_ERROR_BIT) !== 0) {
      if (payload.length < 6) throw new NbdProtocolError(`NBD error chunk of ${payload.length} bytes from ${this.socketPath}`);
      const errno = payload.readUInt32BE(0);
      const msgLen = payload.readUInt16BE(4);
      const msg = payload.subarray(6, Math.min(payload.length, 6 + msgLen)).toString('utf8');
      const at = type === REPLY_TYPE_ERROR_OFFSET && payload.length >= 6 + msgLen + 8 ? ` at ${payload.readBigUInt64BE(6 + msgLen)}` : '';
      p.error ??= this.requestError(p, errno || 5, msg + at);
    } else {
      throw new NbdProtocolError(`NBD reply chunk of unknown type ${type} from ${this.socketPath}`);
    }
    if ((flags & REPLY_FLAG_DONE) !== 0) {
      if (p.type === CMD_READ) this.doneRead(p);
      else this.finish(p, p.error);
    }
  }

  private doneRead(p: Pending): void {
    if (!p.error && p.covered !== p.length) {
      throw new NbdProtocolError(`NBD ${p.what} on ${this.exportName}: the reply covered ${p.covered} of ${p.length} bytes`);
    }
    this.finish(p, p.error);
  }

  private lookup(cookieBig: bigint): Pending {
    const cookie = Number(cookieBig);
    const p = this.pending.get(cookie);
    if (!p) throw new NbdProtocolError(`NBD reply from ${this.socketPath} for cookie ${cookieBig}, which no request has`);
    return p;
  }

  private requestError(p: Pending, errno: number, msg: string): NbdRequestError {
    const name = ERRNO[errno] ?? `errno ${errno}`;
    return new NbdRequestError(`NBD ${p.what} on export ${JSON.stringify(this.exportName)} at ${this.socketPath} failed: ${name}${msg ? `: ${msg}` : ''}`, errno);
  }

  private fail(reason: Error, destroy = true): void {
    if (this.closeReason) return;
    this.closeReason = reason;
    this.log.debug({ reason: reason.message }, 'NBD connection closed');
    if (destroy) this.socket.destroy();
    for (const p of [...this.pending.values()]) this.finish(p, reason instanceof DoppelError && !(reason instanceof NbdClosedError) ? reason : new NbdClosedError(`NBD ${p.what} on ${this.exportName}: ${reason.message}`, { cause: reason }));
    for (const w of this.waiting.splice(0)) w();
    for (const w of this.idle.splice(0)) w();
  }
}

/** Waits for every promise, then throws the first failure (so no request is left running unobserved). */
export async function settleAll(parts: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(parts);
  const bad = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad) throw bad.reason instanceof Error ? bad.reason : new Error(String(bad.reason));
}

function requestHeader(type: number, cookie: number, offset: number, length: number, flags = 0): Buffer {
  const b = Buffer.allocUnsafe(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(BigInt(cookie), 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/** The handshake: sequential reads with one deadline. */
class Handshake {
  readonly rx = new ByteQueue();
  private wake: (() => void) | null = null;
  private error: Error | null = null;
  private readonly onData = (b: Buffer): void => {
    this.rx.push(b);
    this.wake?.();
  };
  private readonly onEnd = (): void => {
    this.error ??= new NbdProtocolError(`${this.where}: the server closed the connection during the handshake`);
    this.wake?.();
  };
  private readonly onError = (err: Error): void => {
    this.error ??= new NbdClosedError(`${this.where}: ${err.message}`, { cause: err });
    this.wake?.();
  };

  constructor(
    private readonly socket: Socket,
    private readonly where: string,
    private readonly deadline: number,
  ) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
  }

  async run(exportName: string, metaContexts: string[]): Promise<{ size: number; flags: number; maxPayload: number; contexts: Map<string, number>; structured: boolean }> {
    const hello = await this.read(18);
    if (hello.readBigUInt64BE(0) !== NBDMAGIC) throw new NbdProtocolError(`${this.where} is not an NBD server (no NBDMAGIC greeting)`);
    if (hello.readBigUInt64BE(8) !== IHAVEOPT) throw new NbdProtocolError(`${this.where}: an oldstyle NBD server, which this client does not speak`);
    const serverFlags = hello.readUInt16BE(16);
    if ((serverFlags & FLAG_FIXED_NEWSTYLE) === 0) throw new NbdProtocolError(`${this.where}: the server is not fixed-newstyle`);
    const clientFlags = Buffer.allocUnsafe(4);
    clientFlags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | (serverFlags & FLAG_NO_ZEROES), 0);
    this.socket.write(clientFlags);

    // Structured replies: needed for block status, and they let QEMU send holes without their zeros.
    this.sendOption(OPT_STRUCTURED_REPLY, Buffer.alloc(0));
    const sr = await this.readOptionReply(OPT_STRUCTURED_REPLY);
    const structured = sr.type === REP_ACK;
    if (!structured && sr.type !== REP_ERR_UNSUP) throw this.optionError('structured replies', sr);
    if (!structured && metaContexts.length > 0) throw new FailedPreconditionError(`${this.where}: the server has no structured replies, so no meta contexts`);

    const contexts = new Map<string, number>();
    const nameBuf = Buffer.from(exportName, 'utf8');
    if (metaContexts.length > 0) {
      const queries = metaContexts.map((c) => Buffer.from(c, 'utf8'));
      const data = Buffer.alloc(4 + nameBuf.length + 4 + queries.reduce((s, q) => s + 4 + q.length, 0));
      let o = data.writeUInt32BE(nameBuf.length, 0);
      o += nameBuf.copy(data, o);
      o = data.writeUInt32BE(queries.length, o);
      for (const q of queries) {
        o = data.writeUInt32BE(q.length, o);
        o += q.copy(data, o);
      }
      this.sendOption(OPT_SET_META_CONTEXT, data);
      for (;;) {
        const r = await this.readOptionReply(OPT_SET_META_CONTEXT);
        if (r.type === REP_ACK) break;
        if (r.type === REP_META_CONTEXT && r.data.length >= 4) {
          contexts.set(r.data.subarray(4).toString('utf8'), r.data.readUInt32BE(0));
          continue;
        }
        if (r.type === REP_ERR_UNKNOWN) throw new NotFoundError(`${this.where} does not exist${r.message ? `: ${r.message}` : ''}`);
        throw this.optionError('meta contexts', r);
      }
      const missing = metaContexts.filter((c) => !contexts.has(c));
      if (missing.length > 0) throw new NotFoundError(`${this.where} offers no meta context ${missing.join(', ')} (for a dirty bitmap: is it exported with the node?)`);
    }

    const go = Buffer.alloc(4 + nameBuf.length + 2 + 2);
    let o = go.writeUInt32BE(nameBuf.length, 0);
    o += nameBuf.copy(go, o);
    o = go.writeUInt16BE(1, o);
    go.writeUInt16BE(INFO_BLOCK_SIZE, o);
    this.sendOption(OPT_GO, go);
    let size = -1;
    let flags = 0;
    let maxPayload = DEFAULT_MAX_PAYLOAD;
    for (;;) {
      const r = await this.readOptionReply(OPT_GO);
      if (r.type === REP_ACK) break;
      if (r.type === REP_INFO && r.data.length >= 2) {
        const info = r.data.readUInt16BE(0);
        if (info === INFO_EXPORT && r.data.length >= 12) {
          const s = r.data.readBigUInt64BE(2);
          if (s > BigInt(Number.MAX_SAFE_INTEGER)) throw new NbdProtocolError(`${this.where}: export size ${s} is too large`);
          size = Number(s);
          flags = r.data.readUInt16BE(10);
        } else if (info === INFO_BLOCK_SIZE && r.data.length >= 14) {
          maxPayload = Math.min(DEFAULT_MAX_PAYLOAD, r.data.readUInt32BE(10));
        }
        continue;
      }
      if (r.type === REP_ERR_UNKNOWN) throw new NotFoundError(`${this.where} does not exist${r.message ? `: ${r.message}` : ''}`);
      throw this.optionError('NBD_OPT_GO', r);
    }
    if (size < 0) throw new NbdProtocolError(`${this.where}: NBD_OPT_GO ended without the export's size`);
    if (maxPayload < DISK_BLOCK_SIZE) throw new NbdProtocolError(`${this.where}: the server's largest request (${maxPayload} bytes) is under one block`);
    return { size, flags, maxPayload, contexts, structured };
  }

  private sendOption(option: number, data: Buffer): void {
    const h = Buffer.allocUnsafe(16);
    h.writeBigUInt64BE(IHAVEOPT, 0);
    h.writeUInt32BE(option, 8);
    h.writeUInt32BE(data.length, 12);
    this.socket.write(Buffer.concat([h, data]));
  }

  private async readOptionReply(option: number): Promise<{ type: number; data: Buffer; message: string }> {
    const h = await this.read(20);
    if (h.readBigUInt64BE(0) !== OPT_REPLY_MAGIC) throw new NbdProtocolError(`${this.where}: bad option reply magic`);
    const replyOption = h.readUInt32BE(8);
    const type = h.readUInt32BE(12);
    const length = h.readUInt32BE(16);
    if (replyOption !== option) throw new NbdProtocolError(`${this.where}: a reply to option ${replyOption} while waiting for ${option}`);
    if (length > MAX_OPTION_REPLY) throw new NbdProtocolError(`${this.where}: an option reply of ${length} bytes`);
    const data = length > 0 ? Buffer.from(await this.read(length)) : Buffer.alloc(0);
    const message = (type & REP_ERR_BIT) !== 0 ? data.toString('utf8') : '';
    return { type, data, message };
  }

  private optionError(what: string, r: { type: number; message: string }): Error {
    const text = `${this.where}: ${what} refused (reply 0x${r.type.toString(16)})${r.message ? `: ${r.message}` : ''}`;
    return (r.type & REP_ERR_BIT) !== 0 ? new FailedPreconditionError(text) : new NbdProtocolError(text);
  }

  private async read(n: number): Promise<Buffer> {
    while (this.rx.available < n) {
      if (this.error) throw this.error;
      const left = this.deadline - Date.now();
      if (left <= 0) throw new DeadlineExceededError(`${this.where}: the NBD handshake took too long`);
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.wake = null;
    }
    return this.rx.take(n);
  }
}

function openSocket(path: string, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new DeadlineExceededError(`connecting to NBD socket ${path} took over ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      if (err.code === 'ENOENT') reject(new NotFoundError(`NBD socket ${path} does not exist`, { cause: err }));
      else if (err.code === 'ECONNREFUSED') reject(new UnavailableError(`NBD socket ${path} refused the connection (its server is gone)`, { cause: err }));
      else reject(new UnavailableError(`cannot connect to NBD socket ${path}: ${err.message}`, { cause: err }));
    });
  });
}
