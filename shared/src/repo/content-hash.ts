/**
 * Digests and disk content hashes.
 *
 * A disk's content hash is the SHA-256 over its chunk digests, in order, where
 * an all-zero chunk (stored as nothing, indexed with an empty digest) counts as
 * the SHA-256 of that many zero bytes. Two disks with equal content therefore
 * have equal hashes however their zero regions were recorded (a hole, a zero
 * chunk that was read, a chunk reused from a base backup), and an agent can
 * compute the hash of a live disk by reading it chunk by chunk without a
 * repository. It costs one SHA-256 pass over the data, which an upload and a
 * restore make anyway.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors.js';
import { DIGEST_BYTES, chunkCount, chunkLength } from './types.js';
import { sharedHashPool } from './hash-pool.js';

const ZERO_BLOCK = Buffer.alloc(1024 * 1024);

/** True when every byte is zero (memcmp speed, tens of GB/s). */
export function isAllZero(buf: Uint8Array): boolean {
  const b = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  for (let off = 0; off < b.length; off += ZERO_BLOCK.length) {
    const end = Math.min(b.length, off + ZERO_BLOCK.length);
    if (!b.subarray(off, end).equals(ZERO_BLOCK.subarray(0, end - off))) return false;
  }
  return true;
}

/**
 * Zeroes `buf[start, end)`. On memory backed by a SharedArrayBuffer (the
 * uploader's read buffers) V8's `fill` runs at about 1.6 GB/s; copying from a
 * zero block runs at memcpy speed there, so sparse chunks stay cheap.
 */
export function zeroFill(buf: Buffer, start = 0, end = buf.length): void {
  for (let at = start; at < end; at += ZERO_BLOCK.length) {
    buf.set(ZERO_BLOCK.subarray(0, Math.min(ZERO_BLOCK.length, end - at)), at);
  }
}

/** SHA-256 on the calling thread. */
export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

/**
 * SHA-256 on a worker thread (see hash-pool.ts): hashing is the largest CPU
 * cost of an upload, and off the main thread it overlaps with gRPC and LZ4.
 * A SharedArrayBuffer-backed `data` must stay unchanged until this settles.
 */
export function sha256Async(data: Uint8Array): Promise<Buffer> {
  return sharedHashPool().digest(data);
}

const zeroDigests = new Map<number, Buffer>();

/** SHA-256 of `length` zero bytes (cached: a disk has at most two distinct chunk lengths). */
export function zeroChunkDigest(length: number): Buffer {
  let d = zeroDigests.get(length);
  if (!d) {
    const h = createHash('sha256');
    for (let left = length; left > 0; left -= ZERO_BLOCK.length) h.update(ZERO_BLOCK.subarray(0, Math.min(left, ZERO_BLOCK.length)));
    d = h.digest();
    if (zeroDigests.size < 64) zeroDigests.set(length, d);
  }
  return d;
}

/** A digest as 64 hex characters (how errors and chunk file names spell it). */
export function digestHex(digest: Uint8Array): string {
  return Buffer.from(digest.buffer, digest.byteOffset, digest.byteLength).toString('hex');
}

/**
 * The content hash of a disk, computed as its chunks come (in order). Add the
 * chunk's SHA-256, or an empty digest for an all-zero chunk.
 */
export class ContentHasher {
  private readonly hash = createHash('sha256');
  private next = 0;
  readonly chunks: number;

  constructor(
    readonly sizeBytes: number,
    readonly chunkSize: number,
  ) {
    this.chunks = chunkCount(sizeBytes, chunkSize);
  }

  /** Chunks added so far. */
  get added(): number {
    return this.next;
  }

  add(digest: Uint8Array): void {
    if (this.next >= this.chunks) throw new InvalidArgumentError(`content hash: more than ${this.chunks} chunks added`);
    if (digest.length === 0) {
      this.hash.update(zeroChunkDigest(chunkLength(this.next, this.sizeBytes, this.chunkSize)));
    } else if (digest.length === DIGEST_BYTES) {
      this.hash.update(digest);
    } else {
      throw new InvalidArgumentError(`content hash: digest of chunk ${this.next} is ${digest.length} bytes`);
    }
    this.next++;
  }

  /** Hashes a chunk's raw bytes and adds the result (zero chunks are recognised). */
  addData(raw: Uint8Array): void {
    this.add(isAllZero(raw) ? Buffer.alloc(0) : sha256(raw));
  }

  /** The hash (hex); every chunk must have been added. */
  digest(): string {
    if (this.next !== this.chunks) throw new InvalidArgumentError(`content hash: ${this.next} of ${this.chunks} chunks added`);
    return this.hash.digest('hex');
  }
}

/** The content hash of a disk from its index's digests. */
export function contentHashOf(digests: readonly Uint8Array[], sizeBytes: number, chunkSize: number): string {
  const h = new ContentHasher(sizeBytes, chunkSize);
  for (const d of digests) h.add(d);
  return h.digest();
}
