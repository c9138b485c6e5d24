/**
 * Framing of a QEMU migration stream for the data plane: the byte stream QEMU writes is cut into frames of up to
 * 1 MiB raw, each LZ4-compressed (or raw when LZ4 cannot shrink it), numbered, and checksummed.
 *
 * Frame layout, little-endian, a 24-byte header then the payload:
 *
 *   0  4  magic "DQMF"
 *   4  1  version (1)
 *   5  1  flags: bit 0 = RAW (payload is the raw bytes), other bits 0
 *   6  2  reserved, 0
 *   8  4  sequence number (0, 1, 2... per stream)
 *  12  4  raw length (bytes of migration stream this frame carries)
 *  16  4  payload length
 *  20  4  CRC-32 over header bytes 0..19 and the payload as sent
 *
 * The CRC covers the wire bytes, so a corrupt frame is refused before anything is decompressed or written into a
 * destination QEMU (which would otherwise load garbage into guest memory or abort the migration with an opaque
 * "load of migration failed"). LZ4 decoding then must produce exactly the raw length.
 *
 * `encodeFrame`/`decodeFrame` are pure; `MigrationFrameEncoder`/`MigrationFrameDecoder` add the sequence
 * numbering, the check that no frame was lost or reordered, and byte counters.
 */
import lz4 from 'lz4';
import { crc32 } from 'node:zlib';
import { DataCorruptionError, InvalidArgumentError } from '../../../../shared/src/errors.js';

/** Raw bytes one frame carries at most. */
export const MAX_FRAME_RAW_BYTES = 1024 * 1024;
export const FRAME_HEADER_BYTES = 24;
/** Largest frame on the wire: a raw (uncompressed) frame of MAX_FRAME_RAW_BYTES. */
export const MAX_FRAME_WIRE_BYTES = FRAME_HEADER_BYTES + MAX_FRAME_RAW_BYTES;

const MAGIC = 0x464d5144; // "DQMF" read as a little-endian u32
const VERSION = 1;
const FLAG_RAW = 0x01;
const MAX_SEQ = 0xffff_ffff;

/** One frame, decoded. */
export interface DecodedFrame {
  seq: number;
  /** The migration-stream bytes. For a RAW frame a view into the frame buffer; else a buffer of its own. */
  raw: Buffer;
  /** False for a RAW frame (LZ4 could not shrink its data). */
  compressed: boolean;
  /** The frame's size on the wire, header included. */
  wireBytes: number;
}

/** Byte counters of a framed stream. */
export interface FrameCounters {
  frames: number;
  /** Frames that went RAW because LZ4 could not shrink them. */
  rawFrames: number;
  /** Migration-stream bytes carried. */
  rawBytes: number;
  /** Bytes of the frames, headers included. */
  wireBytes: number;
}

export function emptyCounters(): FrameCounters {
  return { frames: 0, rawFrames: 0, rawBytes: 0, wireBytes: 0 };
}

/**
 * Encodes one frame. `raw` (0..MAX_FRAME_RAW_BYTES bytes) is not kept: the frame owns its memory, so it may sit in
 * a gRPC send queue while the caller reuses `raw`. LZ4 writes straight into the frame's buffer (no copy of the
 * payload); a compressed frame is therefore a view of a buffer of about `raw.length` bytes.
 */
export function encodeFrame(seq: number, raw: Buffer): Buffer {
  if (!Number.isInteger(seq) || seq < 0 || seq > MAX_SEQ) throw new InvalidArgumentError(`frame sequence number ${seq} is not in 0..${MAX_SEQ}`);
  if (raw.length > MAX_FRAME_RAW_BYTES) {
    throw new InvalidArgumentError(`a migration frame carries at most ${MAX_FRAME_RAW_BYTES} bytes; got ${raw.length}`);
  }
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + (raw.length > 0 ? lz4.encodeBound(raw.length) : 0));
  let payloadLength = raw.length;
  let flags = FLAG_RAW;
  if (raw.length > 0) {
    // encodeBlock returns 0 for input it cannot compress, and may return more than the input for random data.
    const n = lz4.encodeBlock(raw, buf.subarray(FRAME_HEADER_BYTES));
    if (n > 0 && n < raw.length) {
      payloadLength = n;
      flags = 0;
    }
  }
  if (flags & FLAG_RAW) raw.copy(buf, FRAME_HEADER_BYTES);
  const frame = buf.subarray(0, FRAME_HEADER_BYTES + payloadLength);
  frame.writeUInt32LE(MAGIC, 0);
  frame.writeUInt8(VERSION, 4);
  frame.writeUInt8(flags, 5);
  frame.writeUInt16LE(0, 6);
  frame.writeUInt32LE(seq, 8);
  frame.writeUInt32LE(raw.length, 12);
  frame.writeUInt32LE(payloadLength, 16);
  frame.writeUInt32LE(frameCrc(frame), 20);
  return frame;
}

function frameCrc(frame: Buffer): number {
  return crc32(frame.subarray(FRAME_HEADER_BYTES), crc32(frame.subarray(0, 20)));
}

/**
 * Validates and decodes one frame. DataCorruptionError for anything wrong with it (truncated, foreign, sizes out of
 * bounds, checksum, LZ4 data that does not decode to the stated length), naming the frame.
 */
export function decodeFrame(frame: Buffer): DecodedFrame {
  if (frame.length < FRAME_HEADER_BYTES) {
    throw new DataCorruptionError(`migration frame of ${frame.length} bytes is shorter than its ${FRAME_HEADER_BYTES}-byte header`);
  }
  if (frame.length > MAX_FRAME_WIRE_BYTES) {
    throw new DataCorruptionError(`migration frame of ${frame.length} bytes exceeds the ${MAX_FRAME_WIRE_BYTES}-byte limit`);
  }
  if (frame.readUInt32LE(0) !== MAGIC) throw new DataCorruptionError('not a migration frame: bad magic');
  const version = frame.readUInt8(4);
  if (version !== VERSION) throw new DataCorruptionError(`migration frame version ${version} is not supported (expected ${VERSION})`);
  const flags = frame.readUInt8(5);
  const seq = frame.readUInt32LE(8);
  const rawLength = frame.readUInt32LE(12);
  const payloadLength = frame.readUInt32LE(16);
  const what = `migration frame ${seq}`;
  if ((flags & ~FLAG_RAW) !== 0 || frame.readUInt16LE(6) !== 0) throw new DataCorruptionError(`${what}: unknown flags or reserved bits set`);
  if (payloadLength !== frame.length - FRAME_HEADER_BYTES) {
    throw new DataCorruptionError(`${what}: header says ${payloadLength} payload bytes, the frame has ${frame.length - FRAME_HEADER_BYTES}`);
  }
  if (rawLength > MAX_FRAME_RAW_BYTES) {
    throw new DataCorruptionError(`${what}: raw length ${rawLength} exceeds the ${MAX_FRAME_RAW_BYTES}-byte limit`);
  }
  const crc = frameCrc(frame);
  const stated = frame.readUInt32LE(20);
  if (crc !== stated) {
    throw new DataCorruptionError(`${what}: checksum mismatch (computed ${crc.toString(16)}, frame says ${stated.toString(16)})`);
  }
  const payload = frame.subarray(FRAME_HEADER_BYTES);
  if (flags & FLAG_RAW) {
    if (payloadLength !== rawLength) throw new DataCorruptionError(`${what}: raw frame with ${payloadLength} payload bytes for ${rawLength} raw bytes`);
    return { seq, raw: payload, compressed: false, wireBytes: frame.length };
  }
  if (payloadLength === 0 || payloadLength >= rawLength) {
    throw new DataCorruptionError(`${what}: compressed payload of ${payloadLength} bytes for ${rawLength} raw bytes`);
  }
  const raw = Buffer.allocUnsafe(rawLength);
  // decodeBlock returns a negative offset for malformed input rather than throwing.
  const got = lz4.decodeBlock(payload, raw);
  if (got !== rawLength) throw new DataCorruptionError(`${what}: LZ4 payload decodes to ${got < 0 ? 'an error' : `${got} bytes`}, expected ${rawLength}`);
  return { seq, raw, compressed: true, wireBytes: frame.length };
}

/** Cuts a byte stream into numbered frames and counts bytes. */
export class MigrationFrameEncoder {
  readonly counters: FrameCounters = emptyCounters();
  private nextSeq = 0;

  /** The sequence number the next frame gets. */
  get seq(): number {
    return this.nextSeq;
  }

  /** Frames for `raw` (any length; empty input gives no frame), in order, each carrying at most 1 MiB. */
  encode(raw: Buffer): Buffer[] {
    const frames: Buffer[] = [];
    for (let off = 0; off < raw.length; off += MAX_FRAME_RAW_BYTES) {
      const part = raw.subarray(off, Math.min(raw.length, off + MAX_FRAME_RAW_BYTES));
      const frame = encodeFrame(this.nextSeq, part);
      this.nextSeq++;
      this.counters.frames++;
      if (frame.readUInt8(5) & FLAG_RAW) this.counters.rawFrames++;
      this.counters.rawBytes += part.length;
      this.counters.wireBytes += frame.length;
      frames.push(frame);
    }
    return frames;
  }
}

/** Decodes frames in order: a frame out of sequence (lost, duplicated, reordered) is a DataCorruptionError. */
export class MigrationFrameDecoder {
  readonly counters: FrameCounters = emptyCounters();
  private nextSeq = 0;

  /** The sequence number expected next. */
  get seq(): number {
    return this.nextSeq;
  }

  decode(frame: Buffer): Buffer {
    const d = decodeFrame(frame);
    if (d.seq !== this.nextSeq) {
      throw new DataCorruptionError(`migration frame ${d.seq} arrived where frame ${this.nextSeq} was expected: a frame was lost, repeated or reordered`);
    }
    this.nextSeq++;
    this.counters.frames++;
    if (!d.compressed) this.counters.rawFrames++;
    this.counters.rawBytes += d.raw.length;
    this.counters.wireBytes += d.wireBytes;
    return d.raw;
  }
}
