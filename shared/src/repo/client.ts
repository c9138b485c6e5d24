/**
 * The backup repository's gRPC client, promise-shaped. Unary calls carry
 * deadlines; the chunk streams honour backpressure in both directions; every
 * chunk read back is re-hashed here too, so a restore never gets wrong bytes
 * even from a faulty server or network.
 */
import { Metadata, type ClientReadableStream, type ClientWritableStream, type ServiceError } from '@grpc/grpc-js';
import { AbortedError, DataCorruptionError, InternalError, InvalidArgumentError, ResourceExhaustedError } from '../errors.js';
import { fromServiceError } from '../grpc/status.js';
import { INSECURE, channelCredentials, type ExpectedServer, type Transport } from '../security/tls.js';
import { drainOrFailure } from '../grpc/backpressure.js';
import { DATA_PLANE_WINDOW_BYTES } from '../grpc/http2-window.js';
import { REPOSITORY_MAX_MESSAGE_BYTES, loadRepositoryProto } from '../grpc/loader.js';
import type { RepositoryClient as RepositoryGrpcClient } from '../gen/doppel/v1/Repository.js';
import type { BackupManifest__Output } from '../gen/doppel/v1/BackupManifest.js';
import type { Chunk__Output } from '../gen/doppel/v1/Chunk.js';
import type { PutChunksReply__Output } from '../gen/doppel/v1/PutChunksReply.js';
import type { VerifyProgress__Output } from '../gen/doppel/v1/VerifyProgress.js';
import { checkChunkShape, chunkMessage, decodeChunk, type EncodedChunk } from './chunk-codec.js';
import { digestHex, sha256Async } from './content-hash.js';
import {
  DIGEST_BYTES,
  MAX_MISSING_QUERY,
  MAX_READ_CHUNKS,
  type BadChunkReport,
  type RepoDiskIndex,
  type RepoInfo,
  type RepoManifest,
  type VerifyProgressReport,
} from './types.js';

/** Deadlines of a `RepositoryClient`. */
export interface RepositoryClientOptions {
  /** Deadline of each unary call; default 30 s. */
  callDeadlineMs?: number;
  /** Deadline of a commit, which checks every referenced chunk and fsyncs; default 120 s. */
  commitDeadlineMs?: number;
  /** Mutual TLS (the repository must present the certificate REPOSITORY_SERVER) or plaintext; default plaintext. */
  transport?: Transport;
}

/** The certificate every repository presents (in the coordinator's process or standalone). */
export const REPOSITORY_SERVER: ExpectedServer = { name: 'repository', role: 'repository' };

/** What a PutChunks stream stored. */
export interface PutChunksResult {
  chunksStored: number;
  /** Chunks the repository already held when they arrived. */
  chunksExisting: number;
  bytesStored: number;
}

/** What a verification found, over all its progress reports. */
export interface VerifyResult {
  chunksChecked: number;
  chunksTotal: number;
  bad: BadChunkReport[];
}

type Callback<T> = (err: ServiceError | null, value?: T) => void;

/** Turns a grpc-js callback into a promise settlement, with the error as a typed doppel error. */
function settle<T>(context: string, resolve: (v: T) => void, reject: (e: Error) => void): Callback<T> {
  return (err, value) => {
    if (err) reject(fromServiceError(err, context));
    else if (value === undefined) reject(new InternalError(`${context}: empty reply`));
    else resolve(value);
  };
}

/** A BackupManifest message as the plain `RepoManifest`. */
export function manifestFromProto(m: BackupManifest__Output): RepoManifest {
  return {
    backupId: m.backupId,
    createdAt: m.createdAt,
    metadataJson: m.metadataJson,
    disks: m.disks.map((d) => ({
      name: d.name,
      sizeBytes: d.sizeBytes,
      chunkSize: d.chunkSize,
      chunks: d.chunks,
      zeroChunks: d.zeroChunks,
      indexSha256: d.indexSha256,
      contentHash: d.contentHash,
    })),
  };
}

/**
 * One PutChunks stream. `write` waits for `drain` when grpc-js asks for it, so
 * at most a window's worth of chunks is buffered; each written chunk must own
 * its buffers until grpc-js is done with them (it may serialise and frame a
 * message after write() returned).
 *
 * Messages are serialised here rather than by protobufjs: a chunk from
 * `ChunkEncoder.encodeFramed` carries its message ready (`wire`), which saves
 * copying every payload into a fresh buffer of its own (and the garbage
 * collections that a new megabyte-sized buffer per chunk cost).
 */
export class ChunkWriter {
  private readonly call: ClientWritableStream<Buffer>;
  private failure: Error | undefined;
  private reply: PutChunksResult | undefined;
  private readonly waiters = new Set<() => void>();
  /** Payload bytes and chunks handed to `write`. */
  bytesSent = 0;
  chunksSent = 0;

  constructor(client: RepositoryGrpcClient, private readonly context: string, deadlineMs?: number) {
    const options = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    const method = loadRepositoryProto().doppel.v1.Repository.service.PutChunks;
    const callback = (err: ServiceError | null, reply?: PutChunksReply__Output) => {
      if (err) this.failure ??= fromServiceError(err, context);
      else if (reply) this.reply = { chunksStored: reply.chunksStored, chunksExisting: reply.chunksExisting, bytesStored: reply.bytesStored };
      else this.failure ??= new InternalError(`${context}: PutChunks ended without a reply`);
      this.wake();
    };
    this.call = client.makeClientStreamRequest<Buffer, PutChunksReply__Output>(method.path, (wire) => wire, method.responseDeserialize, new Metadata(), options, callback);
    // The status arrives through the callback; an 'error' event without a listener would throw.
    this.call.on('error', (err) => {
      this.failure ??= fromServiceError(err, context);
      this.wake();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Sends one chunk; resolves when more may be written. `onReleased` runs once
   * grpc-js no longer needs the chunk's buffers (sent, or the call failed): a
   * buffer may be reused from then on, not before.
   */
  async write(chunk: EncodedChunk, onReleased?: () => void): Promise<void> {
    if (this.failure) throw this.failure;
    checkChunkShape(chunk);
    this.bytesSent += chunk.data.length;
    this.chunksSent++;
    if (!this.call.write(chunkMessage(chunk), () => onReleased?.())) {
      await drainOrFailure(this.call, this.waiters, () => this.failure);
    }
    if (this.failure) throw this.failure;
  }

  /** Half-closes the stream and waits until the repository has stored (fsynced) every chunk. */
  async end(): Promise<PutChunksResult> {
    if (this.failure) throw this.failure;
    this.call.end();
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.failure || this.reply) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
      check();
    });
    if (this.failure) throw this.failure;
    return this.reply!;
  }

  /** Abandons the stream; chunks the repository already stored stay stored. */
  cancel(reason: string): void {
    this.failure ??= new AbortedError(`${this.context}: ${reason}`);
    this.call.cancel();
    this.wake();
  }
}

/**
 * A client for one repository server. Unary calls carry a deadline
 * (`callDeadlineMs`, default 30 s; commits `commitDeadlineMs`, default 120 s);
 * streams have none, as they last as long as the disk they carry. Errors are
 * the typed doppel errors the server sent (see grpc/status.ts).
 */
export class RepositoryClient {
  private readonly grpc: RepositoryGrpcClient;
  private streamClient: RepositoryGrpcClient | undefined;
  private readonly context: string;
  private readonly callDeadlineMs: number;
  private readonly commitDeadlineMs: number;
  private readonly transport: Transport;
  private infoPromise: Promise<RepoInfo> | undefined;

  constructor(
    readonly addr: string,
    opts: RepositoryClientOptions = {},
  ) {
    this.transport = opts.transport ?? INSECURE;
    this.grpc = this.channel(false);
    this.context = `repository ${addr}`;
    this.callDeadlineMs = opts.callDeadlineMs ?? 30_000;
    this.commitDeadlineMs = opts.commitDeadlineMs ?? 120_000;
  }

  /**
   * A grpc-js client. The chunk streams get a connection of their own
   * (`streams`): on a shared one, a MissingChunks query waits behind the
   * megabytes of chunk data already queued on the TCP connection (we measured
   * 20-45 ms per query during an upload, against a few ms on its own connection).
   */
  private channel(streams: boolean): RepositoryGrpcClient {
    const proto = loadRepositoryProto();
    const { creds, options } = channelCredentials(this.transport, REPOSITORY_SERVER);
    return new proto.doppel.v1.Repository(this.addr, creds, {
      ...options,
      'grpc.max_send_message_length': REPOSITORY_MAX_MESSAGE_BYTES,
      'grpc.max_receive_message_length': REPOSITORY_MAX_MESSAGE_BYTES,
      // ReadChunks flows server -> client: a 64 KiB window would bound a restore, as it did the page stream.
      'grpc-node.flow_control_window': DATA_PLANE_WINDOW_BYTES,
      'grpc.keepalive_time_ms': 30_000,
      // A subchannel of this client's own, not shared with other clients of the same address.
      ...(streams ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    });
  }

  /** The client for chunk streams, on its own connection (made on first use). */
  private get streams(): RepositoryGrpcClient {
    this.streamClient ??= this.channel(true);
    return this.streamClient;
  }

  private deadline(ms: number = this.callDeadlineMs): { deadline: number } {
    return { deadline: Date.now() + ms };
  }

  /** The repository's chunk size and limits (asked once, then cached). */
  info(): Promise<RepoInfo> {
    this.infoPromise ??= new Promise<RepoInfo>((resolve, reject) => {
      this.grpc.getInfo({}, this.deadline(), settle(this.context, resolve, reject));
    });
    // A failed ask is not cached: the next call tries again.
    this.infoPromise.catch(() => (this.infoPromise = undefined));
    return this.infoPromise;
  }

  /** Indices (into `digests`) of the chunks the repository lacks; any number of digests, asked in batches. */
  async missingChunks(digests: readonly Buffer[]): Promise<number[]> {
    const missing: number[] = [];
    for (let off = 0; off < digests.length; off += MAX_MISSING_QUERY) {
      const batch = digests.slice(off, off + MAX_MISSING_QUERY);
      const reply = await new Promise<{ missing: number[] }>((resolve, reject) => {
        this.grpc.missingChunks({ digests: batch }, this.deadline(), settle(this.context, resolve, reject));
      });
      for (const i of reply.missing) {
        if (!Number.isInteger(i) || i < 0 || i >= batch.length) throw new InternalError(`${this.context}: MissingChunks answered index ${i} for ${batch.length} digests`);
        missing.push(off + i);
      }
    }
    return missing;
  }

  /** Opens a PutChunks stream. No deadline by default: a stream lives as long as an upload. */
  putChunks(opts: { deadlineMs?: number } = {}): ChunkWriter {
    return new ChunkWriter(this.streams, this.context, opts.deadlineMs);
  }

  /** Commits a backup: its indexes, then its manifest. Every non-zero chunk must be stored already. */
  async commit(backupId: string, disks: readonly RepoDiskIndex[], metadataJson = ''): Promise<RepoManifest> {
    // A commit carries every index in one message; say so plainly rather than let grpc-js refuse it.
    let bytes = metadataJson.length + 256;
    for (const d of disks) bytes += d.digests.length * (DIGEST_BYTES + 2) + 128;
    if (bytes > REPOSITORY_MAX_MESSAGE_BYTES) {
      throw new ResourceExhaustedError(
        `backup ${backupId}: its indexes and metadata need about ${bytes} bytes, over the ${REPOSITORY_MAX_MESSAGE_BYTES}-byte message limit of ${this.context}`,
      );
    }
    const m = await new Promise<BackupManifest__Output>((resolve, reject) => {
      this.grpc.commitBackup(
        { backupId, metadataJson, disks: disks.map((d) => ({ disk: d.disk, sizeBytes: d.sizeBytes, chunkSize: d.chunkSize, digests: d.digests })) },
        this.deadline(this.commitDeadlineMs),
        settle(this.context, resolve, reject),
      );
    });
    return manifestFromProto(m);
  }

  /** A committed backup's manifest; NotFoundError for an unknown id. */
  async manifest(backupId: string): Promise<RepoManifest> {
    const m = await new Promise<BackupManifest__Output>((resolve, reject) => {
      this.grpc.getManifest({ backupId }, this.deadline(), settle(this.context, resolve, reject));
    });
    return manifestFromProto(m);
  }

  /** A disk's index (the repository checks it against the manifest's hash first). */
  async index(backupId: string, disk: string): Promise<RepoDiskIndex> {
    const ix = await new Promise<RepoDiskIndex>((resolve, reject) => {
      this.grpc.getIndex({ backupId, disk }, this.deadline(), settle(this.context, resolve, reject));
    });
    return { disk: ix.disk, sizeBytes: ix.sizeBytes, chunkSize: ix.chunkSize, digests: ix.digests };
  }

  /** Committed backups, oldest first; metadata only when asked for. */
  async list(opts: { withMetadata?: boolean; limit?: number } = {}): Promise<RepoManifest[]> {
    const reply = await new Promise<{ backups: BackupManifest__Output[] }>((resolve, reject) => {
      this.grpc.listBackups({ withMetadata: opts.withMetadata ?? false, limit: opts.limit ?? 0 }, this.deadline(), settle(this.context, resolve, reject));
    });
    return reply.backups.map(manifestFromProto);
  }

  /**
   * Fetches chunks by digest, in order, and hands each one's raw content to
   * `onChunk` (index into `digests`) after checking that it hashes to its digest.
   * The stream waits while `onChunk`'s promise is pending. A chunk that does not
   * match is DataCorruptionError naming the digest.
   */
  async readChunks(digests: readonly Buffer[], onChunk: (i: number, raw: Buffer) => void | Promise<void>): Promise<void> {
    for (const [i, d] of digests.entries()) {
      if (d.length !== DIGEST_BYTES) throw new InvalidArgumentError(`digest ${i} is ${d.length} bytes (expected ${DIGEST_BYTES})`);
    }
    for (let off = 0; off < digests.length; off += MAX_READ_CHUNKS) {
      await this.readBatch(digests.slice(off, off + MAX_READ_CHUNKS), off, onChunk);
    }
  }

  private readBatch(digests: Buffer[], base: number, onChunk: (i: number, raw: Buffer) => void | Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const call: ClientReadableStream<Chunk__Output> = this.grpc.readChunks({ digests });
      const queue: Chunk__Output[] = [];
      let next = 0;
      let busy = false;
      let ended = false;
      let failed = false;
      const fail = (err: unknown) => {
        if (failed) return;
        failed = true;
        call.cancel();
        reject(err instanceof Error ? err : new InternalError(String(err)));
      };
      const pump = async () => {
        if (busy || failed) return;
        busy = true;
        try {
          while (queue.length > 0 && !failed) {
            const c = queue.shift()!;
            const k = next++;
            const want = digests[k];
            if (!want) throw new DataCorruptionError(`${this.context}: ReadChunks sent more than the ${digests.length} chunks asked for`);
            if (!c.digest.equals(want)) {
              throw new DataCorruptionError(`${this.context}: asked for chunk ${digestHex(want)}, got ${digestHex(c.digest)}`);
            }
            checkChunkShape(c);
            // Decoded into shared memory, the hash worker reads it in place; raw data is copied for it once.
            const raw = c.compressed ? decodeChunk(c, Buffer.from(new SharedArrayBuffer(c.rawLength))) : c.data;
            const got = await sha256Async(raw);
            if (!got.equals(want)) {
              throw new DataCorruptionError(`chunk ${digestHex(want)} from ${this.context} does not match its digest (its content hashes to ${digestHex(got)})`);
            }
            await onChunk(base + k, raw);
            if (queue.length < 2) call.resume();
          }
          if (ended && !failed) {
            if (next === digests.length) resolve();
            else throw new DataCorruptionError(`${this.context}: ReadChunks ended after ${next} of ${digests.length} chunks`);
          }
        } catch (err) {
          fail(err);
        } finally {
          busy = false;
        }
      };
      call.on('data', (c: Chunk__Output) => {
        queue.push(c);
        // Decoding and hashing are slower than the wire: hold the stream rather than buffer chunks.
        if (queue.length >= 2) call.pause();
        void pump();
      });
      call.on('error', (err) => fail(fromServiceError(err, this.context)));
      call.on('end', () => {
        ended = true;
        void pump();
      });
    });
  }

  /** Re-hashes every chunk of a backup on the server; `onProgress` sees each report. */
  verify(backupId: string, onProgress?: (p: VerifyProgressReport) => void): Promise<VerifyResult> {
    return new Promise<VerifyResult>((resolve, reject) => {
      const call: ClientReadableStream<VerifyProgress__Output> = this.grpc.verifyBackup({ backupId });
      const result: VerifyResult = { chunksChecked: 0, chunksTotal: 0, bad: [] };
      let done = false;
      call.on('data', (p: VerifyProgress__Output) => {
        const bad = p.bad.map((b) => ({ digestHex: b.digestHex, reason: b.reason, disk: b.disk, offset: b.offset }));
        result.chunksChecked = p.chunksChecked;
        result.chunksTotal = p.chunksTotal;
        result.bad.push(...bad);
        done ||= p.done;
        onProgress?.({ chunksChecked: p.chunksChecked, chunksTotal: p.chunksTotal, bad, done: p.done });
      });
      call.on('error', (err) => reject(fromServiceError(err, this.context)));
      call.on('end', () => (done ? resolve(result) : reject(new AbortedError(`${this.context}: verification of ${backupId} ended early`))));
    });
  }

  /** Closes the channel; calls in progress fail. */
  close(): void {
    this.grpc.close();
    this.streamClient?.close();
  }
}
