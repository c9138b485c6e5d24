/**
 * Where the simulated guest writes: the sequence of pages and disk sectors its
 * workload pattern picks. Pure and driven by the PRNG in the machine-state
 * words, so the sequence is a function of the seed: a test can replay a
 * guest's disk writes and check a disk against them byte for byte.
 */
import { MS } from './layout.js';
import { xoshiro128ss } from './prng.js';

export const DISK_WRITE_SIZE = 4096;

/** Picks among `count` units by the pattern; `cursorWord` keeps the sequential position in the machine state. */
export function nextUnit(ms: Uint32Array, pattern: number, count: number, hotFirst: number, hotCount: number, cursorWord: number): number {
  switch (pattern) {
    case 1: {
      // Hot set: 10% of the space takes 90% of the writes.
      const r = xoshiro128ss(ms, MS.prng0);
      if (r % 10 !== 0) return hotFirst + (xoshiro128ss(ms, MS.prng0) % hotCount);
      return xoshiro128ss(ms, MS.prng0) % count;
    }
    case 2: {
      const p = ms[cursorWord]! % count;
      ms[cursorWord] = (p + 1) % count;
      return p;
    }
    default:
      return xoshiro128ss(ms, MS.prng0) % count;
  }
}

/** The guest's 4 KiB disk writes over all its disks' blocks, end to end. */
export class DiskWorkload {
  private readonly sectorsPerBlock: number;
  private readonly hotCount: number;
  private readonly hotFirst: number;
  /** What a write puts down: a text-like record (it compresses), stamped with the write number and block. */
  private readonly record = Buffer.from('doppel guest write: a log record of fixed text that compresses well. '.repeat(64).slice(0, DISK_WRITE_SIZE), 'latin1');

  constructor(
    private readonly ms: Uint32Array,
    private readonly pattern: number,
    readonly totalBlocks: number,
    blockSize: number,
    seed: number,
  ) {
    this.sectorsPerBlock = blockSize / DISK_WRITE_SIZE;
    this.hotCount = Math.max(1, Math.floor(totalBlocks / 10));
    this.hotFirst = (seed * 7919) % Math.max(1, totalBlocks - this.hotCount);
  }

  /** The next write's place: a global block and a byte offset in it. Sequential writes fill a block before moving on. */
  next(): { block: number; offset: number } {
    const spb = this.sectorsPerBlock;
    if (this.pattern === 2) {
      const g = nextUnit(this.ms, 2, this.totalBlocks * spb, 0, 1, MS.diskCursor);
      return { block: Math.floor(g / spb), offset: (g % spb) * DISK_WRITE_SIZE };
    }
    const block = nextUnit(this.ms, this.pattern, this.totalBlocks, this.hotFirst, this.hotCount, MS.diskCursor);
    return { block, offset: (xoshiro128ss(this.ms, MS.prng0) % spb) * DISK_WRITE_SIZE };
  }

  /** The data of write number `n` (1-based) to `block`. The buffer is reused. */
  data(n: number, block: number): Buffer {
    this.record.writeUInt32LE(n >>> 0, 0);
    this.record.writeUInt32LE(block, 4);
    return this.record;
  }
}
