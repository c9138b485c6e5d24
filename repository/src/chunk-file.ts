/**
 * The chunk file: a 16-byte header, then the payload exactly as it travels
 * (one LZ4 block, or the raw bytes when LZ4 could not shrink them), so storing
 * and serving a chunk never recompresses it.
 *
 *   0  'DPCK'          magic
 *   4  u8  format      1
 *   5  u8  flags       bit 0: payload is LZ4
 *   6  u16 reserved    0
 *   8  u32 rawLength   little-endian
 *  12  u32 payloadLength
 *  16  payload
 *
 * The file's name is the SHA-256 of the raw content; a reader decodes and
 * re-hashes before trusting it.
 */
import { DataCorruptionError } from '../../shared/src/mod.js';

/** The first four bytes of every chunk file. */
export const CHUNK_MAGIC = Buffer.from('DPCK', 'latin1');
/** The chunk file format this code writes and reads. */
export const CHUNK_FORMAT = 1;
/** Header bytes before the payload. */
export const CHUNK_HEADER_BYTES = 16;
const FLAG_LZ4 = 1;

/** The header of a chunk file holding `payloadLength` bytes. */
export function chunkHeader(rawLength: number, compressed: boolean, payloadLength: number): Buffer {
  const h = Buffer.alloc(CHUNK_HEADER_BYTES);
  CHUNK_MAGIC.copy(h, 0);
  h.writeUInt8(CHUNK_FORMAT, 4);
  h.writeUInt8(compressed ? FLAG_LZ4 : 0, 5);
  h.writeUInt32LE(rawLength, 8);
  h.writeUInt32LE(payloadLength, 12);
  return h;
}

/** A parsed chunk file; `payload` is a view of the file's buffer. */
export interface ChunkFile {
  rawLength: number;
  compressed: boolean;
  payload: Buffer;
}

/** Parses a chunk file; a bad header or a length that disagrees with the file is DataCorruptionError. */
export function parseChunkFile(file: Buffer, name: string): ChunkFile {
  if (file.length < CHUNK_HEADER_BYTES || !file.subarray(0, 4).equals(CHUNK_MAGIC)) {
    throw new DataCorruptionError(`chunk ${name}: not a chunk file (bad magic or ${file.length} bytes)`);
  }
  const format = file.readUInt8(4);
  if (format !== CHUNK_FORMAT) throw new DataCorruptionError(`chunk ${name}: unknown chunk format ${format}`);
  const flags = file.readUInt8(5);
  const rawLength = file.readUInt32LE(8);
  const payloadLength = file.readUInt32LE(12);
  if (file.length !== CHUNK_HEADER_BYTES + payloadLength) {
    throw new DataCorruptionError(`chunk ${name}: file holds ${file.length - CHUNK_HEADER_BYTES} payload bytes, its header says ${payloadLength}`);
  }
  return { rawLength, compressed: (flags & FLAG_LZ4) !== 0, payload: file.subarray(CHUNK_HEADER_BYTES) };
}
