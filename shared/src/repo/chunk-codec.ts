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
  /**
   * The whole Chunk message as protobuf bytes, ending with `data` in place,
   * when the encoder could build it so (`encodeFramed`): then it is sent as it
   * is, without protobufjs copying the payload into a message of its own.
   */
  wire?: Buffer;
}

/** Bytes `encodeFramed` needs in front of a payload for the Chunk message's other fields (at most 48). */
export const CHUNK_WIRE_HEADROOM = 64;

function varintLength(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(into: Buffer, at: number, v: number): number {
  while (v >= 0x80) {
    into[at++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  into[at++] = v;
  return at;
}

/**
 * Writes the Chunk message's fields before `data` (digest = 1, raw_length = 2,
 * compressed = 3, then data = 4's tag and length) so that they end at `end`;
 * returns where they start. The payload follows at `end`, so the message is
 * one contiguous range. The bytes are the ones protobufjs writes for the same message.
 */
function writeChunkFields(into: Buffer, end: number, c: { digest: Buffer; rawLength: number; compressed: boolean }, dataLength: number): number {
  const length = 2 + c.digest.length + 1 + varintLength(c.rawLength) + 2 + 1 + varintLength(dataLength);
  const start = end - length;
  if (start < 0) throw new InvalidArgumentError(`no room for a ${length}-byte chunk header`);
  let at = start;
  into[at++] = 0x0a; // field 1, length-delimited
  at = writeVarint(into, at, c.digest.length);
  at += c.digest.copy(into, at);
  into[at++] = 0x10; // field 2, varint
  at = writeVarint(into, at, c.rawLength);
  into[at++] = 0x18; // field 3, varint
  into[at++] = c.compressed ? 1 : 0;
  into[at++] = 0x22; // field 4, length-delimited
  at = writeVarint(into, at, dataLength);
  return start;
}

/** A chunk's Chunk message: its `wire` form, or a new buffer holding the fields and a copy of the data. */
export function chunkMessage(c: EncodedChunk): Buffer {
  if (c.wire) return c.wire;
  const out = Buffer.allocUnsafe(CHUNK_WIRE_HEADROOM + c.data.length);
  const start = writeChunkFields(out, CHUNK_WIRE_HEADROOM, c, c.data.length);
  c.data.copy(out, CHUNK_WIRE_HEADROOM);
  return out.subarray(start);
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

  /**
   * Encodes the `length` raw bytes at `buf[at]` into a chunk whose `wire`
   * message is built in place: compressed into `out` (at least
   * CHUNK_WIRE_HEADROOM + `length` bytes) after a headroom for the other
   * fields, or, when LZ4 cannot shrink the data, around the raw bytes
   * themselves, whose CHUNK_WIRE_HEADROOM bytes in front (`at` must leave them)
   * the message's fields then overwrite. Either way the buffer the result uses
   * must stay untouched until grpc-js is done with it.
   */
  encodeFramed(digest: Buffer, buf: Buffer, at: number, length: number, out: Buffer): EncodedChunk {
    if (at < CHUNK_WIRE_HEADROOM || at + length > buf.length) throw new InvalidArgumentError(`raw chunk at ${at}+${length} leaves no headroom in a ${buf.length}-byte buffer`);
    if (out.length < CHUNK_WIRE_HEADROOM + length) throw new InvalidArgumentError(`output buffer of ${out.length} bytes for a ${length}-byte chunk`);
    const raw = buf.subarray(at, at + length);
    const limit = length - (length >>> 5);
    const n = length >= 64 ? lz4.encodeBlock(raw, out.subarray(CHUNK_WIRE_HEADROOM, CHUNK_WIRE_HEADROOM + limit)) : 0;
    if (n > 0 && n < limit) {
      const c = { digest, rawLength: length, compressed: true };
      const start = writeChunkFields(out, CHUNK_WIRE_HEADROOM, c, n);
      return { ...c, data: out.subarray(CHUNK_WIRE_HEADROOM, CHUNK_WIRE_HEADROOM + n), wire: out.subarray(start, CHUNK_WIRE_HEADROOM + n) };
    }
    const c = { digest, rawLength: length, compressed: false };
    const start = writeChunkFields(buf, at, c, length);
    return { ...c, data: raw, wire: buf.subarray(start, at + length) };
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
