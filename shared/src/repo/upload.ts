/**
 * Uploads one disk into the repository, digests first.
 *
 * Three stages run concurrently with a bounded number of chunk buffers between
 * them (`readAhead`, default 12: 48 MiB at 4 MiB chunks):
 *  - the reader walks the disk. A chunk unchanged since the base backup takes
 *    the base's digest without being read; a hole costs nothing; a read chunk
 *    that is all zeros is recorded as such; the rest are hashed on worker
 *    threads (hash-pool.ts) so hashing overlaps with reading and with the network.
 *  - the querier takes whatever chunks are hashed and asks the repository which
 *    of their digests it lacks (one MissingChunks per batch, at most four in
 *    flight), so that a query's round trip overlaps the stream.
 *  - the sender takes the answered chunks in disk order, and LZ4-compresses and
 *    streams only the missing ones, waiting for `drain` when grpc-js asks.
 * The PutChunks stream is opened only when a chunk has to be sent, so an
 * unchanged or fully deduplicated disk costs only its reads and queries.
 */
import { AbortedError, InvalidArgumentError } from '../errors.js';
import { requireName } from '../validate.js';
import { SharedBufferPool } from './buffer-pool.js';
import { CHUNK_WIRE_HEADROOM, ChunkEncoder } from './chunk-codec.js';
import { contentHashOf, isAllZero, sha256Async } from './content-hash.js';
import type { ChunkWriter, RepositoryClient } from './client.js';
import { MAX_MISSING_QUERY, checkDiskIndex, chunkCount, chunkLength, isValidChunkSize, MAX_DISK_BYTES, type RepoDiskIndex } from './types.js';

/** A disk as the uploader reads it. */
export interface ChunkSource {
  readonly name: string;
  readonly sizeBytes: number;
  readonly chunkSize: number;
  /**
   * Reads chunk `i` into `into`, which is exactly the chunk's length. Answer
   * 'hole' (and leave `into` alone) when the chunk is known to be all zeros
   * without reading it, e.g. it was never allocated. `into` is backed by a
   * SharedArrayBuffer, so that the hash workers read it in place: zero parts
   * of it with `zeroFill`, several times faster there than `Buffer.fill`.
   * Two chunks may be being read at once (into different buffers).
   */
  readChunk(i: number, into: Buffer): Promise<'data' | 'hole'>;
}

/** Chunk numbers, e.g. a Set or a `ChunkBitmap`. */
export interface ChunkSet {
  has(chunk: number): boolean;
}

/** Progress of an upload, per disk. */
export interface UploadProgress {
  disk: string;
  chunksDone: number;
  chunksTotal: number;
  bytesRead: number;
  bytesStored: number;
}

/** Options of `uploadDisk`. */
export interface UploadOptions {
  /**
   * An incremental's base: the previous backup's index of this disk. Chunks not
   * in `changed` (required with a base) take their digest from it unread.
   */
  base?: RepoDiskIndex | null;
  /** The chunks changed since the base (from change tracking; see `changedChunksFromBlocks`). */
  changed?: ChunkSet | null;
  /** Called at most every `progressIntervalMs` (default 250), and once at the end. */
  onProgress?: (p: UploadProgress) => void;
  progressIntervalMs?: number;
  /** Chunk buffers between reading and sending (default 12). */
  readAhead?: number;
  signal?: AbortSignal;
}

/** What an upload read, sent and reused, and the disk's content hash. */
export interface DiskUploadStats {
  bytesRead: number;
  /** Payload bytes sent for new chunks (after LZ4). */
  bytesStored: number;
  chunksNew: number;
  /** Chunks the repository already held, or reused from the base without reading. */
  chunksReused: number;
  chunksZero: number;
  chunksTotal: number;
  contentHash: string;
}

/** The index to commit, and the statistics. */
export interface DiskUploadResult {
  index: RepoDiskIndex;
  stats: DiskUploadStats;
}

/** One bit per chunk. */
export class ChunkBitmap implements ChunkSet {
  readonly words: Uint32Array;

  constructor(readonly chunks: number) {
    this.words = new Uint32Array(Math.ceil(chunks / 32));
  }

  set(i: number): void {
    if (i >= 0 && i < this.chunks) this.words[i >>> 5]! |= 1 << (i & 31);
  }

  has(i: number): boolean {
    return ((this.words[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
  }

  count(): number {
    let n = 0;
    for (let i = 0; i < this.chunks; i++) if (this.has(i)) n++;
    return n;
  }
}

/**
 * The chunks touched by changed blocks, from a block bitmap (bit b of a disk
 * cut into `blockSize` blocks is bit `b & 31` of word `b >>> 5`, as the drivers' change tracking).
 */
export function changedChunksFromBlocks(bitmap: Uint32Array, blockSize: number, chunkSize: number, sizeBytes: number): ChunkBitmap {
  const out = new ChunkBitmap(chunkCount(sizeBytes, chunkSize));
  const blocks = Math.min(bitmap.length * 32, Math.ceil(sizeBytes / blockSize));
  for (let w = 0; w < bitmap.length; w++) {
    const word = bitmap[w]!;
    if (word === 0) continue;
    for (let bit = 0; bit < 32; bit++) {
      const b = w * 32 + bit;
      if (b >= blocks || (word & (1 << bit)) === 0) continue;
      const first = Math.floor((b * blockSize) / chunkSize);
      const last = Math.floor(((b + 1) * blockSize - 1) / chunkSize);
      for (let c = first; c <= last; c++) out.set(c);
    }
  }
  return out;
}

interface Pending {
  i: number;
  buf: Buffer;
  view: Buffer;
  digest: Promise<Buffer>;
}

/** A chunk being read. */
interface Reading {
  i: number;
  buf: Buffer;
  view: Buffer;
  kind: Promise<'data' | 'hole'>;
}

/** A hashed chunk and the pending answer to whether the repository lacks it. */
interface Queried extends Pending {
  d: Buffer;
  key: string;
  answer: Promise<Set<string>> | undefined;
}

/** Wakes whoever waits, once per `notify`; a `notify` with nobody waiting is not remembered (callers re-check state). */
class Signal {
  private waiters: (() => void)[] = [];

  wait(): Promise<void> {
    return new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  notify(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/** Resolves after the event loop has run once (I/O callbacks included). */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Chunk buffers between reading and sending, by default. */
const DEFAULT_READ_AHEAD = 12;
/** Chunks read at once. */
const READS_AT_ONCE = 2;
/** Compressed chunks on their way out at once. */
const OUT_BUFFERS = 4;
/** MissingChunks queries in flight at once. */
const MAX_QUERIES_OUT = 4;

const EMPTY = Buffer.alloc(0);

/** Uploads one disk; commit its index (with the other disks') with `RepositoryClient.commit`. */
export async function uploadDisk(client: RepositoryClient, source: ChunkSource, opts: UploadOptions = {}): Promise<DiskUploadResult> {
  const { name, sizeBytes, chunkSize } = source;
  requireName('disk name', name);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 1 || sizeBytes > MAX_DISK_BYTES) {
    throw new InvalidArgumentError(`disk '${name}': size must be 1 to ${MAX_DISK_BYTES} bytes (got ${sizeBytes})`);
  }
  if (!isValidChunkSize(chunkSize)) throw new InvalidArgumentError(`disk '${name}': invalid chunk size ${chunkSize}`);
  const base = opts.base ?? null;
  const changed = opts.changed ?? null;
  if (base) {
    checkDiskIndex(base, chunkSize);
    if (!changed) throw new InvalidArgumentError(`disk '${name}': an incremental upload needs the set of changed chunks with its base`);
  }
  // Chunks of another size would be refused one by one; say so once, before reading anything.
  const repoChunkSize = (await client.info()).chunkSize;
  if (repoChunkSize !== chunkSize) {
    throw new InvalidArgumentError(`disk '${name}': the repository at ${client.addr} uses ${repoChunkSize}-byte chunks, not ${chunkSize}`);
  }
  const n = chunkCount(sizeBytes, chunkSize);
  const digests = new Array<Buffer>(n);
  const stats: DiskUploadStats = { bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, chunksZero: 0, chunksTotal: n, contentHash: '' };
  // Each chunk is read after a headroom where the message's other fields go if it is sent raw (see encodeFramed).
  const pool = new SharedBufferPool(CHUNK_WIRE_HEADROOM + chunkSize, Math.max(2, opts.readAhead ?? DEFAULT_READ_AHEAD));
  // Compressed chunks on their way out (plain memory: grpc-js copies it faster than shared).
  const outPool = new SharedBufferPool(CHUNK_WIRE_HEADROOM + chunkSize, OUT_BUFFERS, false);
  /** Read and being hashed, in disk order. */
  const ready: Pending[] = [];
  /** Asked about (or being asked about), in disk order. */
  const queried: Queried[] = [];
  /** Digests (hex) known to be stored, or sent on this upload's stream. */
  const known = new Set<string>();
  /** Digests (hex) asked about on this upload; a repeat is settled by the first one's outcome. */
  const asked = new Set<string>();
  let chunksDone = 0;
  let producing = true;
  let querying = true;
  let queriesOut = 0;
  let failure: Error | undefined;
  let writer: ChunkWriter | undefined;
  const chunksReady = new Signal();
  const answersReady = new Signal();
  const queryRoom = new Signal();
  const fail = (err: unknown) => {
    failure ??= err instanceof Error ? err : new AbortedError(String(err));
    pool.fail(failure);
    outPool.fail(failure);
    chunksReady.notify();
    answersReady.notify();
    queryRoom.notify();
  };
  const interval = opts.progressIntervalMs ?? 250;
  let lastProgress = performance.now();
  const progress = (final: boolean) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!final && now - lastProgress < interval) return;
    lastProgress = now;
    opts.onProgress({ disk: name, chunksDone, chunksTotal: n, bytesRead: stats.bytesRead, bytesStored: stats.bytesStored });
  };
  const onAbort = () => fail(new AbortedError(`upload of disk '${name}' was cancelled`));
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  if (opts.signal?.aborted) onAbort();

  // Whether chunk i is the same as in the base, which then supplies its digest.
  const baseDigest = (i: number): Buffer | undefined => {
    if (!base || !changed || changed.has(i) || i >= base.digests.length) return undefined;
    if (chunkLength(i, base.sizeBytes, chunkSize) !== chunkLength(i, sizeBytes, chunkSize)) return undefined;
    return base.digests[i];
  };

  /** Takes a read chunk: an all-zero one is recorded as such, the rest go to be hashed. */
  const took = (r: Reading, kind: 'data' | 'hole') => {
    if (kind === 'data') stats.bytesRead += r.view.length;
    if (kind === 'hole' || isAllZero(r.view)) {
      pool.release(r.buf);
      digests[r.i] = EMPTY;
      stats.chunksZero++;
      chunksDone++;
      progress(false);
      return;
    }
    const digest = sha256Async(r.view);
    // Awaited by the querier; this only keeps a failure from counting as unhandled meanwhile.
    digest.catch(() => undefined);
    ready.push({ i: r.i, buf: r.buf, view: r.view, digest });
    chunksReady.notify();
  };

  // Reads up to READS_AT_ONCE chunks at once (a read's latency then overlaps the next one's), taken in disk order.
  const read = async () => {
    const reading: Reading[] = [];
    let i = 0;
    while (!failure) {
      while (i < n && reading.length < READS_AT_ONCE && !failure) {
        const reused = baseDigest(i);
        if (reused) {
          digests[i] = reused;
          if (reused.length === 0) stats.chunksZero++;
          else stats.chunksReused++;
          chunksDone++;
          progress(false);
          i++;
          continue;
        }
        // Wait for a buffer only with nothing else to do: a read in progress is taken first.
        const buf = reading.length === 0 ? await pool.acquire() : pool.tryAcquire();
        if (!buf) break;
        const view = buf.subarray(CHUNK_WIRE_HEADROOM, CHUNK_WIRE_HEADROOM + chunkLength(i, sizeBytes, chunkSize));
        const kind = source.readChunk(i, view);
        kind.catch(() => undefined);
        reading.push({ i, buf, view, kind });
        i++;
      }
      const r = reading.shift();
      if (!r) return;
      took(r, await r.kind);
    }
  };

  // Asks which digests the repository lacks, a batch at a time, while earlier answers are being sent:
  // the query's round trip then overlaps the stream instead of stopping it.
  const query = async () => {
    for (;;) {
      while (ready.length === 0 && producing && !failure) await chunksReady.wait();
      // Chunks that become ready meanwhile join the next batch.
      while (queriesOut >= MAX_QUERIES_OUT && !failure) await queryRoom.wait();
      if (failure || ready.length === 0) return;
      const batch = ready.splice(0, MAX_MISSING_QUERY);
      const ds = await Promise.all(batch.map((p) => p.digest));
      if (failure) return;
      // Ask once per digest (a disk repeats content, e.g. an image's blocks); repeats follow the first one.
      const ask: Buffer[] = [];
      const items = batch.map((p, k): Queried => {
        const key = ds[k]!.toString('hex');
        digests[p.i] = ds[k]!;
        if (!known.has(key) && !asked.has(key)) {
          asked.add(key);
          ask.push(ds[k]!);
        }
        return { ...p, d: ds[k]!, key, answer: undefined };
      });
      const answer = ask.length > 0 ? client.missingChunks(ask).then((m) => new Set(m.map((j) => ask[j]!.toString('hex')))) : Promise.resolve(new Set<string>());
      queriesOut++;
      answer
        .finally(() => {
          queriesOut--;
          queryRoom.notify();
        })
        .catch(() => undefined);
      for (const it of items) it.answer = answer;
      queried.push(...items);
      answersReady.notify();
    }
  };

  const send = async () => {
    const encoder = new ChunkEncoder();
    for (;;) {
      while (queried.length === 0 && querying && !failure) await answersReady.wait();
      if (failure || queried.length === 0) return;
      const p = queried.shift()!;
      const missing = await p.answer!;
      if (failure) return;
      if (missing.has(p.key) && !known.has(p.key)) {
        const out = await outPool.acquire();
        const enc = encoder.encodeFramed(p.d, p.buf, CHUNK_WIRE_HEADROOM, p.view.length, out);
        writer ??= client.putChunks();
        known.add(p.key);
        stats.bytesStored += enc.data.length;
        // Whichever buffer goes out comes back once grpc-js is done with the message.
        if (enc.compressed) {
          pool.release(p.buf);
          await writer.write(enc, () => outPool.release(out));
        } else {
          outPool.release(out);
          await writer.write(enc, () => pool.release(p.buf));
        }
        // Let the event loop run: HTTP/2 writes the chunk out only then, and answers to queries arrive.
        // Without this, chunks that are ready encode back to back in one chain of microtasks.
        await yieldToEventLoop();
      } else {
        known.add(p.key);
        stats.chunksReused++;
        pool.release(p.buf);
      }
      chunksDone++;
      progress(false);
      if (failure) return;
    }
  };

  try {
    await Promise.all([
      read()
        .catch(fail)
        .finally(() => {
          producing = false;
          chunksReady.notify();
        }),
      query()
        .catch(fail)
        .finally(() => {
          querying = false;
          answersReady.notify();
        }),
      send().catch(fail),
    ]);
    if (failure) throw failure;
    if (writer) {
      const reply = await writer.end();
      stats.chunksNew = reply.chunksStored;
      stats.chunksReused += reply.chunksExisting;
    }
  } catch (err) {
    fail(err);
    if (writer) {
      // What was sent before a read error is kept (a retry will not send it again); a cancel stops at once.
      if (failure instanceof AbortedError) writer.cancel(failure.message);
      else await writer.end().catch(() => undefined);
    }
    throw failure ?? err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
  stats.contentHash = contentHashOf(digests, sizeBytes, chunkSize);
  progress(true);
  return { index: { disk: name, sizeBytes, chunkSize, digests }, stats };
}
