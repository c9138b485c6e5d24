/**
 * The consistency token of seed 001's check: the guest writes an increasing
 * sequence number with a checksum to an image disk and to a bypass volume in
 * one step. A backup is time-consistent when both restored copies carry the same
 * number. Used by the guest worker, so it imports nothing heavy.
 */
import { crc32 } from 'node:zlib';

export const TOKEN_BYTES = 4096;
const MAGIC = Buffer.from('DOPPEL-CONSISTENCY-TOKEN', 'latin1');
const SEQ_AT = MAGIC.length;
const CRC_AT = SEQ_AT + 8;

/** Writes token `seq` into `into` (TOKEN_BYTES long). */
export function encodeToken(seq: number, into: Buffer): Buffer {
  into.fill(0, 0, TOKEN_BYTES);
  MAGIC.copy(into, 0);
  into.writeUInt32LE(seq >>> 0, SEQ_AT);
  into.writeUInt32LE(Math.floor(seq / 2 ** 32) >>> 0, SEQ_AT + 4);
  into.writeUInt32LE(crc32(into.subarray(0, CRC_AT)) >>> 0, CRC_AT);
  return into;
}

/** The token's sequence number; 0 for a sector never written with one, -1 for a damaged one. */
export function decodeToken(sector: Buffer): number {
  if (sector.length < TOKEN_BYTES) return -1;
  if (!sector.subarray(0, MAGIC.length).equals(MAGIC)) return sector.subarray(0, CRC_AT + 4).every((b) => b === 0) ? 0 : -1;
  if ((crc32(sector.subarray(0, CRC_AT)) >>> 0) !== sector.readUInt32LE(CRC_AT)) return -1;
  return sector.readUInt32LE(SEQ_AT + 4) * 2 ** 32 + sector.readUInt32LE(SEQ_AT);
}
