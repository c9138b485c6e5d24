/**
 * The per-disk index file, binary so that a 1 TiB disk's 262,144 digests take
 * 8 MiB rather than four times that in JSON:
 *
 *   0  'DPIX'          magic
 *   4  u8  format      1
 *   5  3 bytes         reserved, 0
 *   8  u64 sizeBytes   little-endian
 *  16  u32 chunkSize
 *  20  u32 chunks
 *  24  u16 nameLength, then the disk name (UTF-8)
 *   .  chunks x 32 bytes: the digests in disk order; 32 zero bytes mark an all-zero chunk
 *
 * The manifest holds the SHA-256 of the whole file, so an index changed after
 * the commit is detected before it is used.
 */
import { DataCorruptionError, DIGEST_BYTES, type RepoDiskIndex } from '../../shared/src/mod.js';

const MAGIC = Buffer.from('DPIX', 'latin1');
const FORMAT = 1;
const FIXED = 26;
const ZERO_MARK = Buffer.alloc(DIGEST_BYTES);

/** The index file bytes of `index`. */
export function encodeIndex(index: RepoDiskIndex): Buffer {
  const name = Buffer.from(index.disk, 'utf8');
  const n = index.digests.length;
  const out = Buffer.alloc(FIXED + name.length + n * DIGEST_BYTES);
  MAGIC.copy(out, 0);
  out.writeUInt8(FORMAT, 4);
  out.writeBigUInt64LE(BigInt(index.sizeBytes), 8);
  out.writeUInt32LE(index.chunkSize, 16);
  out.writeUInt32LE(n, 20);
  out.writeUInt16LE(name.length, 24);
  name.copy(out, FIXED);
  let at = FIXED + name.length;
  for (const d of index.digests) {
    // Zero chunks stay as the buffer's zero fill.
    if (d.length === DIGEST_BYTES) d.copy(out, at);
    at += DIGEST_BYTES;
  }
  return out;
}

/** Decodes an index file; `what` names it in errors. Digests are views into `file`. */
export function decodeIndex(file: Buffer, what: string): RepoDiskIndex {
  if (file.length < FIXED || !file.subarray(0, 4).equals(MAGIC)) throw new DataCorruptionError(`${what}: not an index file`);
  const format = file.readUInt8(4);
  if (format !== FORMAT) throw new DataCorruptionError(`${what}: unknown index format ${format}`);
  const sizeBytes = Number(file.readBigUInt64LE(8));
  const chunkSize = file.readUInt32LE(16);
  const n = file.readUInt32LE(20);
  const nameLength = file.readUInt16LE(24);
  if (file.length !== FIXED + nameLength + n * DIGEST_BYTES) {
    throw new DataCorruptionError(`${what}: ${file.length} bytes, its header says ${FIXED + nameLength + n * DIGEST_BYTES}`);
  }
  const disk = file.toString('utf8', FIXED, FIXED + nameLength);
  const digests: Buffer[] = new Array<Buffer>(n);
  const empty = Buffer.alloc(0);
  let at = FIXED + nameLength;
  for (let i = 0; i < n; i++, at += DIGEST_BYTES) {
    const d = file.subarray(at, at + DIGEST_BYTES);
    digests[i] = d.equals(ZERO_MARK) ? empty : d;
  }
  return { disk, sizeBytes, chunkSize, digests };
}
