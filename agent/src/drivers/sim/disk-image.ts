/**
 * Disk images: the content a disk made from an image starts with. It depends
 * only on the image name and the disk size, never on the VM, so two VMs of one
 * image hold identical disks (and share their backup chunks), on any host.
 *
 * Like a used file system: allocation comes in extents, about 60% of blocks are
 * allocated, and those mix zero blocks, text-like (compressible) blocks and
 * random (incompressible) ones.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { textTemplates } from './content.js';
import type { LayerFile } from './layer-io.js';
import { splitmix32 } from './prng.js';

/** Shares of all blocks; holes are the rest. */
export const IMAGE_MIX = { zero: 0.1, text: 0.3, random: 0.2 } as const;

/** Longest extent of one kind of block. */
const MAX_EXTENT = 16;
const SECTOR = 4096;
/** Blocks written per system call at most. */
const RUN_BLOCKS = 64;

const Kind = { Hole: 0, Zero: 1, Text: 2, Random: 3 } as const;

/** Writes the image's content into an empty layer of `blockCount` blocks. */
export function writeImage(layer: LayerFile, image: string, blockCount: number): void {
  const bs = layer.blockSize;
  const digest = createHash('sha256').update(`doppel-image\0${image}\0${blockCount * bs}`).digest();
  const rnd = splitmix32(digest.readUInt32LE(0));
  // Text blocks are tiled from 4 KiB records: cheap to make, and as compressible as whole-block text.
  const tpl = textTemplates(SECTOR, digest.readUInt32LE(4));
  const cipher = createCipheriv('aes-256-ctr', digest, Buffer.alloc(16));
  const run = Buffer.alloc(RUN_BLOCKS * bs);
  let runFirst = 0;
  let runLen = 0;
  const flush = () => {
    if (runLen === 0) return;
    layer.write(runFirst * bs, run, 0, runLen * bs);
    const entries: number[] = [];
    for (let i = 0; i < runLen; i++) entries.push(runFirst + i);
    layer.record(entries);
    runLen = 0;
  };

  let b = 0;
  while (b < blockCount) {
    const x = (rnd() % 1000) / 1000;
    const kind =
      x < IMAGE_MIX.zero ? Kind.Zero : x < IMAGE_MIX.zero + IMAGE_MIX.text ? Kind.Text : x < IMAGE_MIX.zero + IMAGE_MIX.text + IMAGE_MIX.random ? Kind.Random : Kind.Hole;
    const end = Math.min(blockCount, b + 1 + (rnd() % MAX_EXTENT));
    for (; b < end; b++) {
      if (kind === Kind.Hole) {
        flush();
        continue;
      }
      if (runLen === RUN_BLOCKS || (runLen > 0 && runFirst + runLen !== b)) flush();
      if (runLen === 0) runFirst = b;
      const at = runLen * bs;
      const slot = run.subarray(at, at + bs);
      if (kind === Kind.Zero) slot.fill(0);
      else if (kind === Kind.Random) cipher.update(slot.fill(0)).copy(slot);
      else {
        for (let o = 0; o < bs; o += SECTOR) {
          tpl[rnd() % tpl.length]!.copy(slot, o);
          // Stamp the block number so text blocks differ, as files do.
          slot.writeUInt32LE(b, o + ((b * 64) % (SECTOR - 64)));
        }
      }
      runLen++;
    }
  }
  flush();
}
