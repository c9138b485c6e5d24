/** Content hashes of disk views, for tests and checks: what a reader of the disk sees, holes as zeros. */
import { createHash } from 'node:crypto';
import type { DiskView } from './driver.js';

/** Blocks read per call: large reads keep the view at page-cache speed. */
const BATCH_BLOCKS = 64;

/** SHA-256 (hex) of every byte of the disk, in order; holes hash as zeros. */
export async function hashDiskView(view: DiskView): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(BATCH_BLOCKS * view.blockSize);
  for (let b = 0; b < view.blockCount; b += BATCH_BLOCKS) {
    const n = Math.min(BATCH_BLOCKS, view.blockCount - b);
    await view.read(b, n, buf);
    h.update(buf.subarray(0, n * view.blockSize));
  }
  return h.digest('hex');
}
