/**
 * The two halves of a relayed QEMU migration, each of which can sit at one end of a data-plane stream:
 *
 *   source QEMU --migrate unix:A--> listenForMigration(A, sink) --frames--> sink ... feed.write(frame)
 *     --bytes--> feedIncoming(B) --> destination QEMU (migrate-incoming unix:B)
 *
 * The source half serves a unix socket that the source QEMU migrates into (`migrate uri=unix:A`), accepts exactly
 * one connection, and cuts what it reads into LZ4 frames (migration-frames.ts) handed in order to an async sink.
 * The sink's promise is the backpressure: while more than `maxInFlightBytes` read from QEMU are not yet accepted
 * by the sink, the socket is paused, so QEMU's writes block and its bandwidth estimate (which decides the
 * switchover) is the relay's real throughput rather than the size of a buffer.
 *
 * The target half connects to the destination QEMU's incoming socket (after `migrate-incoming uri=unix:B`),
 * checks and decodes each frame and writes the bytes, waiting for `drain` when the socket's buffer is full.
 *
 * Neither half knows whether the stream it carried was a complete migration: QEMU closes the connection after a
 * completed, failed or cancelled migration alike. `query-migrate` on both QEMUs tells.
 *
 * `relayMigration` wires the halves together in one process (sink = feed.write); with gRPC in between, the sink
 * becomes a client-stream write (write() false → wait for drain) and the feed sits in the receiving agent.
 */
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortedError,
  AlreadyExistsError,
  DeadlineExceededError,
  DoppelError,
  InvalidArgumentError,
  UnavailableError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { MAX_FRAME_RAW_BYTES, MigrationFrameDecoder, MigrationFrameEncoder, type FrameCounters } from './migration-frames.js';

/** Takes one frame; resolving means "accepted, send the next". Frames come in order, one call at a time. */
export type FrameSink = (frame: Buffer) => Promise<void>;

/** Which part of a relay failed. */
export type RelaySide = 'source' | 'sink' | 'destination';

/** A relay half failed: the source QEMU's connection, the sink, or the destination QEMU's socket. */
export class MigrationRelayError extends UnavailableError {
  override name = 'MigrationRelayError';
  readonly side: RelaySide;
  constructor(side: RelaySide, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.side = side;
  }
}

/** Bytes read from the source QEMU but not yet accepted by the sink, at most (default). */
export const DEFAULT_MAX_IN_FLIGHT_BYTES = 8 * 1024 * 1024;
/** The destination socket's write buffer is waited on (drain) above this (default). */
export const DEFAULT_MAX_BUFFERED_BYTES = 2 * 1024 * 1024;
/** How long a clean close by the destination waits for the end of the stream before it counts as ended early. */
export const DEFAULT_PEER_CLOSE_GRACE_MS = 2_000;

export interface RelayStats extends FrameCounters {
  /** Times reading from QEMU was paused because the sink lagged. */
  pauses: number;
  /** Most raw bytes that were read but not yet accepted by the sink at one time. */
  peakInFlightBytes: number;
  /** performance.now() when QEMU connected, when its first byte came, when it closed the stream. */
  connectedAt?: number;
  firstByteAt?: number;
  endedAt?: number;
}

export interface ListenForMigrationOptions {
  /** Bound on raw bytes read but not yet accepted by the sink (default 8 MiB, at least 1 MiB). */
  maxInFlightBytes?: number;
  /** Fail (and stop listening) when QEMU has not connected within this long (default: wait until close()). */
  acceptTimeoutMs?: number;
  logger?: Logger;
}

/**
 * The source half, listening. `done` resolves with the counters once QEMU has closed the stream and the sink has
 * accepted the last frame; it rejects with a MigrationRelayError when the connection or the sink fails (the
 * connection to QEMU is then destroyed, so QEMU's migration fails too), or an AbortedError after `close()`.
 */
export class MigrationSource {
  readonly socketPath: string;
  readonly stats: RelayStats;
  readonly done: Promise<RelayStats>;

  private readonly server: Server;
  private readonly sink: FrameSink;
  private readonly log: Logger;
  private readonly encoder = new MigrationFrameEncoder();
  private readonly maxInFlight: number;
  private socket: Socket | null = null;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushScheduled = false;
  private readonly queue: Buffer[] = [];
  private queueRaw: number[] = [];
  /** Raw bytes read and not yet accepted by the sink (pending + queued + the frame being sunk). */
  private inFlight = 0;
  private pumping = false;
  private paused = false;
  private ended = false;
  private settled = false;
  private acceptTimer: NodeJS.Timeout | undefined;
  private resolveDone!: (stats: RelayStats) => void;
  private rejectDone!: (err: Error) => void;

  /** @internal use listenForMigration */
  constructor(socketPath: string, server: Server, sink: FrameSink, opts: ListenForMigrationOptions) {
    this.socketPath = socketPath;
    this.server = server;
    this.sink = sink;
    this.log = (opts.logger ?? silentLogger()).child({ component: 'migration-source', socket: socketPath });
    this.maxInFlight = Math.max(opts.maxInFlightBytes ?? DEFAULT_MAX_IN_FLIGHT_BYTES, MAX_FRAME_RAW_BYTES);
    this.stats = { ...this.encoder.counters, pauses: 0, peakInFlightBytes: 0 };
    this.done = new Promise<RelayStats>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Callers may look at `done` only later; a failure before then must not be an unhandled rejection.
    this.done.catch(() => undefined);
    server.on('connection', (socket) => this.onConnection(socket));
    server.on('error', (err) => this.fail(new MigrationRelayError('source', `migration relay socket ${socketPath} failed: ${err.message}`, { cause: err })));
    if (opts.acceptTimeoutMs !== undefined) {
      const ms = opts.acceptTimeoutMs;
      this.acceptTimer = setTimeout(() => {
        this.fail(new DeadlineExceededError(`no QEMU connected to migration relay socket ${socketPath} within ${ms} ms (was migrate uri=unix:${socketPath} issued?)`));
      }, ms);
    }
  }

  /** True once the source QEMU has connected. */
  get connected(): boolean {
    return this.socket !== null;
  }

  /** Stops listening and drops the connection; `done` rejects with an AbortedError (or `reason`) unless settled. */
  close(reason?: Error): void {
    this.fail(reason ?? new AbortedError(`migration relay ${this.socketPath} was closed`));
  }

  private onConnection(socket: Socket): void {
    if (this.socket || this.settled) {
      this.log.warn('a second connection to the migration relay socket; refused');
      socket.destroy();
      return;
    }
    this.socket = socket;
    clearTimeout(this.acceptTimer);
    this.stats.connectedAt = performance.now();
    // Exactly one connection: stop listening, so a second `migrate` cannot interleave with this one.
    this.stopListening();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', (err) => this.fail(new MigrationRelayError('source', `the source QEMU's migration connection on ${this.socketPath} failed: ${err.message}`, { cause: err })));
    socket.on('close', () => {
      if (!this.ended) this.fail(new MigrationRelayError('source', `the source QEMU's migration connection on ${this.socketPath} closed without ending the stream`));
    });
    this.log.debug('source QEMU connected');
  }

  private onData(chunk: Buffer): void {
    if (this.settled) return;
    if (this.stats.firstByteAt === undefined) this.stats.firstByteAt = performance.now();
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.inFlight += chunk.length;
    if (this.inFlight > this.stats.peakInFlightBytes) this.stats.peakInFlightBytes = this.inFlight;
    if (this.pendingBytes >= MAX_FRAME_RAW_BYTES) this.cut(false);
    // Coalesce what this turn of the event loop read (libuv reads up to 32 chunks per poll); flush the rest then,
    // so a short burst (the last pages before pre-switchover) never waits for a frame to fill.
    if (this.pendingBytes > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.cut(true);
      });
    }
    if (this.inFlight >= this.maxInFlight && !this.paused && this.socket) {
      this.paused = true;
      this.stats.pauses++;
      this.socket.pause();
    }
  }

  /** Moves pending bytes into frames: whole 1 MiB frames, and with `all` the remainder too. */
  private cut(all: boolean): void {
    if (this.settled || this.pendingBytes === 0) return;
    if (!all && this.pendingBytes < MAX_FRAME_RAW_BYTES) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const take = all ? data.length : data.length - (data.length % MAX_FRAME_RAW_BYTES);
    const frames = this.encoder.encode(data.subarray(0, take));
    const rest = data.subarray(take);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    let left = take;
    for (const frame of frames) {
      const raw = Math.min(left, MAX_FRAME_RAW_BYTES);
      left -= raw;
      this.queue.push(frame);
      this.queueRaw.push(raw);
    }
    Object.assign(this.stats, this.encoder.counters);
    void this.pump();
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const frame = this.queue.shift();
        const raw = this.queueRaw.shift() ?? 0;
        if (!frame) break;
        try {
          await this.sink(frame);
        } catch (err) {
          const e = err instanceof MigrationRelayError ? err : new MigrationRelayError('sink', `the migration frame sink failed after ${this.stats.rawBytes - this.inFlight} bytes: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
          this.fail(e);
          return;
        }
        if (this.settled) return;
        this.inFlight -= raw;
        if (this.paused && this.inFlight <= this.maxInFlight - MAX_FRAME_RAW_BYTES) {
          this.paused = false;
          this.socket?.resume();
        }
      }
      this.maybeFinish();
    } finally {
      this.pumping = false;
    }
  }

  private onEnd(): void {
    this.ended = true;
    this.stats.endedAt = performance.now();
    this.cut(true);
    this.maybeFinish();
  }

  private maybeFinish(): void {
    if (!this.ended || this.settled || this.pendingBytes > 0 || this.queue.length > 0 || this.inFlight > 0) return;
    this.settled = true;
    this.stopListening();
    this.socket?.destroy();
    this.log.debug({ stats: this.stats }, 'migration stream relayed');
    this.resolveDone({ ...this.stats });
  }

  private fail(err: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.acceptTimer);
    this.stopListening();
    // QEMU sees its writes fail (EPIPE) and fails the migration; a paused source VM is resumed by QEMU itself.
    this.socket?.destroy();
    this.queue.length = 0;
    this.queueRaw = [];
    this.pending = [];
    this.log.warn({ err }, 'migration relay (source side) failed');
    this.rejectDone(err);
  }

  private stopListening(): void {
    if (!this.server.listening) return;
    this.server.close();
    rmSync(this.socketPath, { force: true });
  }
}

/**
 * Serves `socketPath` for one incoming migration stream from a source QEMU and resolves once listening: issue
 * `migrate uri=unix:<socketPath>` after that. AlreadyExistsError when the path is taken (a stale socket file too:
 * the caller owns the directory and removes it).
 */
export async function listenForMigration(socketPath: string, sink: FrameSink, opts: ListenForMigrationOptions = {}): Promise<MigrationSource> {
  if (!socketPath) throw new InvalidArgumentError('migration relay socket path is empty');
  const server = createServer({ allowHalfOpen: false });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      if (err.code === 'EADDRINUSE') reject(new AlreadyExistsError(`migration relay socket ${socketPath} already exists (a stale socket or another relay)`, { cause: err }));
      else reject(new UnavailableError(`cannot listen on migration relay socket ${socketPath}: ${err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(socketPath, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return new MigrationSource(socketPath, server, sink, opts);
}

export interface FeedIncomingOptions {
  /** Keep retrying the connection this long while the destination QEMU sets up its listener (default 10 s). */
  connectTimeoutMs?: number;
  /** write() resolves at once while the socket buffers at most this many bytes, else on drain (default 2 MiB). */
  maxBufferedBytes?: number;
  /**
   * When the destination closes its socket cleanly with every byte delivered, wait this long for end() (the
   * source's end of stream: the destination may finish loading a complete stream a moment before it arrives)
   * before `endedEarly` resolves (the destination died or gave up, e.g. in the pre-switchover window, when
   * nothing moves). Default 2 s.
   */
  peerCloseGraceMs?: number;
  logger?: Logger;
}

/** Counters of the frames a feed decoded and wrote. */
export type FeedStats = FrameCounters;

/**
 * The target half: writes decoded frames into the destination QEMU's incoming socket. Make one with
 * `feedIncoming(path)`. A failure (a corrupt or out-of-order frame, the destination closing its socket) is sticky:
 * every later write() rejects with it, and `failed` resolves with it.
 */
export class MigrationFeed {
  readonly socketPath: string;
  /** Resolves (never rejects) with the error once the feed has failed; stays pending while it works. */
  readonly failed: Promise<Error>;
  /** Resolves (never rejects) once the socket is closed, for whatever reason (see `failed`, `closedByPeer`). */
  readonly closed: Promise<void>;
  /**
   * Resolves (never rejects) with a destination-side MigrationRelayError when the destination went away before
   * the stream ended: its socket failed or closed with bytes undelivered, more came after it closed, or it closed
   * cleanly and end() did not follow within `peerCloseGraceMs`. Stays pending after end(), after destroy(), and
   * for a corrupt frame (see `failed`). This is the signal to abort the source's migration on.
   */
  readonly endedEarly: Promise<MigrationRelayError>;

  private readonly socket: Socket;
  private readonly decoder = new MigrationFrameDecoder();
  private readonly maxBuffered: number;
  private readonly log: Logger;
  private failure: Error | null = null;
  private ending = false;
  private peerClosed = false;
  private resolveFailed!: (err: Error) => void;
  private resolveEndedEarly!: (err: MigrationRelayError) => void;
  private destroying = false;
  private graceTimer: NodeJS.Timeout | null = null;
  private readonly graceMs: number;
  private readonly waiters = new Set<() => void>();

  /** @internal use feedIncoming */
  constructor(socketPath: string, socket: Socket, opts: FeedIncomingOptions) {
    this.socketPath = socketPath;
    this.socket = socket;
    this.maxBuffered = opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.log = (opts.logger ?? silentLogger()).child({ component: 'migration-feed', socket: socketPath });
    this.graceMs = opts.peerCloseGraceMs ?? DEFAULT_PEER_CLOSE_GRACE_MS;
    this.failed = new Promise((resolve) => (this.resolveFailed = resolve));
    this.endedEarly = new Promise((resolve) => (this.resolveEndedEarly = resolve));
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    // QEMU never writes on a precopy incoming channel; anything it sends is ignored.
    socket.on('data', () => undefined);
    socket.on('error', (err) => this.fail(new MigrationRelayError('destination', `the destination QEMU's incoming socket ${socketPath} failed after ${this.decoder.counters.rawBytes} bytes: ${err.message} (did it exit or refuse the stream?)`, { cause: err })));
    // The destination closes its end once it has loaded a complete stream, which can happen before the source's
    // end of stream reaches this relay. A close with every byte delivered is therefore only remembered: the next
    // write() fails. With bytes still buffered it is a failure at once.
    socket.on('end', () => {
      if (this.ending || this.failure) return;
      if (socket.writableLength > 0) {
        this.fail(this.closedError(`with ${socket.writableLength} bytes not yet delivered`));
        return;
      }
      this.peerClosed = true;
      this.graceTimer = setTimeout(() => {
        this.graceTimer = null;
        if (this.ending || this.failure) return;
        const err = new MigrationRelayError(
          'destination',
          `the destination QEMU closed its incoming socket ${socketPath} after ${this.decoder.counters.rawBytes} bytes, and the source did not end its stream within ${this.graceMs} ms (the destination exited or failed to load the stream)`,
        );
        this.log.warn({ err }, 'migration feed: the destination ended the stream early');
        this.resolveEndedEarly(err);
      }, this.graceMs);
      this.graceTimer.unref();
    });
    socket.on('close', () => {
      if (!this.ending && !this.peerClosed) this.fail(this.closedError(''));
      for (const w of [...this.waiters]) w();
    });
  }

  /** True once the destination closed its socket after taking every byte written so far. */
  get closedByPeer(): boolean {
    return this.peerClosed;
  }

  private closedError(detail: string): MigrationRelayError {
    return new MigrationRelayError(
      'destination',
      `the destination QEMU closed its incoming socket ${this.socketPath} after ${this.decoder.counters.rawBytes} bytes${detail ? ` ${detail}` : ''} (it exited, or failed to load the stream)`,
    );
  }

  get stats(): FeedStats {
    return { ...this.decoder.counters };
  }

  /**
   * Decodes one frame and writes its bytes. Resolves once the socket takes more (at once, or on drain);
   * DataCorruptionError for a bad frame, MigrationRelayError when the destination is gone.
   */
  async write(frame: Buffer): Promise<void> {
    if (this.peerClosed && !this.failure) this.fail(this.closedError('and more came'));
    if (this.failure) throw this.failure;
    if (this.ending) throw new InvalidArgumentError(`migration feed ${this.socketPath}: write after end()`);
    let raw: Buffer;
    try {
      raw = this.decoder.decode(frame);
    } catch (err) {
      this.fail(err instanceof Error ? err : new Error(String(err)));
      throw err;
    }
    this.socket.write(raw);
    if (this.socket.writableLength <= this.maxBuffered) return;
    await new Promise<void>((resolve, reject) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.waiters.delete(done);
        if (this.failure) reject(this.failure);
        else resolve();
      };
      this.socket.on('drain', done);
      this.waiters.add(done);
    });
  }

  /** Ends the stream once all written bytes are handed to the socket, and resolves with the counters. */
  async end(): Promise<FeedStats> {
    if (this.failure) throw this.failure;
    if (!this.ending) {
      this.ending = true;
      this.clearGrace();
      if (this.peerClosed || this.socket.destroyed) return this.stats;
      await new Promise<void>((resolve, reject) => {
        this.socket.end(() => resolve());
        this.socket.once('error', reject);
        // The destination may close first after loading the stream's end: the bytes were delivered by then.
        this.socket.once('close', () => resolve());
      });
    }
    return this.stats;
  }

  /** Drops the connection (the destination's incoming migration fails). Idempotent. */
  destroy(reason?: Error): void {
    if (!this.failure) this.destroying = true;
    this.clearGrace();
    this.fail(reason ?? new AbortedError(`migration feed ${this.socketPath} was destroyed`));
  }

  private clearGrace(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.clearGrace();
    if (!this.destroying && !this.ending && err instanceof MigrationRelayError && err.side === 'destination') this.resolveEndedEarly(err);
    this.log.warn({ err }, 'migration feed (destination side) failed');
    this.socket.destroy();
    for (const w of [...this.waiters]) w();
    this.resolveFailed(err);
  }
}

/** Connects to a destination QEMU's incoming migration socket (after `migrate-incoming uri=unix:<socketPath>`). */
export async function feedIncoming(socketPath: string, opts: FeedIncomingOptions = {}): Promise<MigrationFeed> {
  if (!socketPath) throw new InvalidArgumentError('incoming migration socket path is empty');
  const timeoutMs = opts.connectTimeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const socket = await new Promise<Socket>((resolve, reject) => {
        const s = connect({ path: socketPath });
        s.once('connect', () => {
          s.off('error', reject);
          resolve(s);
        });
        s.once('error', reject);
      });
      return new MigrationFeed(socketPath, socket, opts);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const retry = code === 'ENOENT' || code === 'ECONNREFUSED';
      if (!retry || Date.now() >= deadline) {
        const why = retry ? `nothing listened there within ${timeoutMs} ms (was migrate-incoming issued?)` : (err as Error).message;
        throw new UnavailableError(`cannot connect to the destination QEMU's incoming migration socket ${socketPath}: ${why}`, { cause: err });
      }
      await sleep(20);
    }
  }
}

/** peerCloseGraceMs (FeedIncomingOptions) applies: a clean close by the destination fails the relay only if the source's end does not follow. */
export type RelayOptions = ListenForMigrationOptions & FeedIncomingOptions;

/** The two halves wired together in this process. */
export interface InProcessRelay {
  source: MigrationSource;
  feed: MigrationFeed;
  /**
   * Resolves once the source QEMU closed its stream and every byte went into the destination's socket; rejects
   * with the first failure (either side), after tearing both halves down.
   */
  done: Promise<{ source: RelayStats; feed: FeedStats }>;
  /** Tears both halves down. */
  close(reason?: Error): void;
}

/**
 * Connects to the destination's incoming socket, then listens on `listenPath` for the source QEMU: issue
 * `migrate uri=unix:<listenPath>` once this resolves.
 */
export async function relayMigration(listenPath: string, incomingPath: string, opts: RelayOptions = {}): Promise<InProcessRelay> {
  const feed = await feedIncoming(incomingPath, opts);
  let source: MigrationSource;
  try {
    source = await listenForMigration(listenPath, (frame) => feed.write(frame), opts);
  } catch (err) {
    feed.destroy();
    throw err;
  }
  // The destination can die while no frame is moving (in the pre-switchover window): drop the source's
  // connection at once, so QEMU learns of it from its own socket. A clean close is a failure only if the source's
  // end of stream (feed.end() below) does not follow it shortly: the feed's endedEarly says when.
  void feed.failed.then((err) => source.close(err));
  void feed.endedEarly.then((err) => source.close(err));
  const done = (async () => {
    try {
      const s = await source.done;
      const f = await feed.end();
      return { source: s, feed: f };
    } catch (err) {
      feed.destroy(err instanceof Error ? err : undefined);
      source.close(err instanceof Error ? err : undefined);
      throw err instanceof DoppelError ? err : new MigrationRelayError('source', String(err), { cause: err });
    }
  })();
  done.catch(() => undefined);
  return {
    source,
    feed,
    done,
    close: (reason?: Error) => {
      source.close(reason);
      feed.destroy(reason);
    },
  };
}
