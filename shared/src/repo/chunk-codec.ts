/**
 * LZ4 coding of repository chunks, the same on the wire and on disk: one LZ4
 * block per chunk, or the raw bytes when LZ4 cannot shrink them.
 */
import lz4 from 'lz4';
import { DataCorruptionError, InvalidArgumentError } from '../errors.js';
import { DIGEST_BYTES, MAX_CHUNK_SIZE } from './types.js';
import { digestHex } from './content-hash.js';

/** A chunk as PutChunks and ReadChunks carry it. */
export interface EncodedChunk {
  /** SHA-256 of the raw content. */
  digest: Buffer;
  rawLength: number;
  /** `data` is an LZ4 block; otherwise it is the raw content. */
  compressed: boolean;
  data: Buffer;
}

/**
 * Compresses chunks. The output is given only `rawLength - rawLength/32`
 * bytes: LZ4 then gives up early (returns 0) on data it cannot shrink by at
 * least 3 %, which is cheaper than compressing random data in full and sending
 * the larger result anyway.
 */
export class ChunkEncoder {
  private scratch = Buffer.alloc(0);

  /**
   * Encodes `raw`, compressing into `out` when given (at least `raw.length`
   * bytes; the result's data is then a view of `out`), else into a new buffer.
   * An incompressible chunk is sent as `raw` itself (`compressed: false`).
   * Either way the data must stay untouched until grpc-js is done with it.
   */
  encode(digest: Buffer, raw: Buffer, out?: Buffer): EncodedChunk {
    const limit = raw.length - (raw.length >>> 5);
    let target: Buffer;
    if (out) target = out.subarray(0, limit);
    else {
      if (this.scratch.length < limit) this.scratch = Buffer.allocUnsafe(limit);
      target = this.scratch.subarray(0, limit);
    }
    const n = raw.length >= 64 ? lz4.encodeBlock(raw, target) : 0;
    if (n > 0 && n < limit) {
      return { digest, rawLength: raw.length, compressed: true, data: out ? out.subarray(0, n) : Buffer.from(target.subarray(0, n)) };
    }
    return { digest, rawLength: raw.length, compressed: false, data: raw };
  }
}

/**
 * Checks a chunk's framing: digest length, raw length within `maxRawLength`,
 * payload length consistent with the flag. Throws InvalidArgumentError naming the digest.
 */
export function checkChunkShape(c: EncodedChunk, maxRawLength: number = MAX_CHUNK_SIZE): void {
  if (c.digest.length !== DIGEST_BYTES) {
    throw new InvalidArgumentError(`chunk digest must be ${DIGEST_BYTES} bytes (got ${c.digest.length})`);
  }
  const name = digestHex(c.digest);
  if (!Number.isInteger(c.rawLength) || c.rawLength < 1 || c.rawLength > maxRawLength) {
    throw new InvalidArgumentError(`chunk ${name}: raw length must be 1 to ${maxRawLength} bytes (got ${c.rawLength})`);
  }
  if (c.compressed) {
    const bound = lz4.encodeBound(c.rawLength);
    if (c.data.length < 1 || c.data.length > bound) {
      throw new InvalidArgumentError(`chunk ${name}: ${c.data.length} compressed bytes for ${c.rawLength} raw bytes (at most ${bound})`);
    }
  } else if (c.data.length !== c.rawLength) {
    throw new InvalidArgumentError(`chunk ${name}: ${c.data.length} bytes of raw data, raw length says ${c.rawLength}`);
  }
}

/**
 * The raw content of a chunk. A compressed chunk is decoded into `into` (at
 * least `rawLength` bytes) or a new buffer; a raw chunk's data is returned as is.
 * A block that does not decode to exactly `rawLength` bytes is DataCorruptionError.
 */
export function decodeChunk(c: EncodedChunk, into?: Buffer): Buffer {
  if (!c.compressed) return c.data;
  const out = into ? into.subarray(0, c.rawLength) : Buffer.allocUnsafe(c.rawLength);
  if (out.length !== c.rawLength) throw new InvalidArgumentError(`decode buffer of ${out.length} bytes for a ${c.rawLength}-byte chunk`);
  const got = lz4.decodeBlock(c.data, out);
  if (got !== c.rawLength) {
    throw new DataCorruptionError(`chunk ${digestHex(c.digest)}: LZ4 block decodes to ${got < 0 ? 'an error' : `${got} bytes`}, expected ${c.rawLength}`);
  }
  return out;
}
