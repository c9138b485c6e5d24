/**
 * One disk layer as a file pair, in the manner of a qcow2 image: a sparse data
 * file of the disk's full size and an append-only allocation log. Used by the
 * driver (main thread) and by the guest worker alike, so it does synchronous
 * I/O only and imports nothing heavy.
 *
 * Crash safety: a block's data is written before its log entry, so after a
 * crash the log never names a block whose data is missing. The in-memory
 * bitmaps live in SharedArrayBuffers that every thread opening the layer for
 * one VM shares, so the worker's allocations are visible to the driver.
 */
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const LAYER_DATA_FILE = 'data';
export const LAYER_ALLOC_FILE = 'alloc';
/** Set in a log entry: the block is allocated and reads as zeros, with no data behind it (a cheap overwrite with zeros). */
export const ZERO_FLAG = 0x80000000;

/** What a thread needs to open a layer: where it is and the shared bitmaps. */
export interface LayerDesc {
  id: string;
  /** Absolute path of the layer's directory. */
  dir: string;
  /** One bit per block: the layer holds the block. */
  alloc: SharedArrayBuffer;
  /** One bit per block: the block the layer holds reads as zeros (meaningful only where `alloc` is set). */
  zero: SharedArrayBuffer;
}

export function bitmapWords(blocks: number): number {
  return Math.ceil(blocks / 32);
}

export function testBit(bits: Int32Array, b: number): boolean {
  return (Atomics.load(bits, b >>> 5) & (1 << (b & 31))) !== 0;
}

/** Rebuilds a layer's bitmaps from its allocation log; a torn last entry (a crash mid-append) is ignored. */
export function loadLayerDesc(id: string, dir: string, blockCount: number): LayerDesc {
  const words = bitmapWords(blockCount);
  const desc: LayerDesc = { id, dir, alloc: new SharedArrayBuffer(words * 4), zero: new SharedArrayBuffer(words * 4) };
  const alloc = new Int32Array(desc.alloc);
  const zero = new Int32Array(desc.zero);
  const log = readFileSync(join(dir, LAYER_ALLOC_FILE));
  for (let off = 0; off + 4 <= log.length; off += 4) {
    const e = log.readUInt32LE(off);
    const b = (e & ~ZERO_FLAG) >>> 0;
    if (b >= blockCount) continue;
    const bit = 1 << (b & 31);
    alloc[b >>> 5]! |= bit;
    if (e & ZERO_FLAG) zero[b >>> 5]! |= bit;
    else zero[b >>> 5]! &= ~bit;
  }
  return desc;
}

/** An open layer. */
export class LayerFile {
  readonly id: string;
  /** The data file; exposed so the driver can read it asynchronously. */
  readonly fd: number;
  private readonly logFd: number;
  private readonly allocBits: Int32Array;
  private readonly zeroBits: Int32Array;
  private closed = false;

  constructor(
    readonly desc: LayerDesc,
    readonly blockSize: number,
  ) {
    this.id = desc.id;
    this.allocBits = new Int32Array(desc.alloc);
    this.zeroBits = new Int32Array(desc.zero);
    this.fd = openSync(join(desc.dir, LAYER_DATA_FILE), 'r+');
    try {
      this.logFd = openSync(join(desc.dir, LAYER_ALLOC_FILE), 'a');
    } catch (err) {
      closeSync(this.fd);
      throw err;
    }
  }

  /** The layer holds block b (with data, or as a zero block). */
  holds(b: number): boolean {
    return testBit(this.allocBits, b);
  }

  /** The layer holds block b as zeros. */
  isZero(b: number): boolean {
    return testBit(this.zeroBits, b);
  }

  /** The layer holds block b with data in its data file. */
  holdsData(b: number): boolean {
    return this.holds(b) && !this.isZero(b);
  }

  /** Bytes of data the layer holds (blocks held as zeros cost nothing). */
  dataBytes(): number {
    let n = 0;
    for (let w = 0; w < this.allocBits.length; w++) {
      let v = Atomics.load(this.allocBits, w) & ~Atomics.load(this.zeroBits, w);
      while (v !== 0) {
        v &= v - 1;
        n++;
      }
    }
    return n * this.blockSize;
  }

  /** Reads `len` bytes at `pos` of the data file into `into` at `at`. */
  read(pos: number, len: number, into: Buffer, at: number): void {
    let done = 0;
    while (done < len) {
      const n = readSync(this.fd, into, at + done, len - done, pos + done);
      // The data file is sized to the disk at creation: a short read means it was truncated behind our back.
      if (n === 0) throw new Error(`layer ${this.id}: data file ends at ${pos + done}`);
      done += n;
    }
  }

  write(pos: number, data: Buffer, from = 0, len = data.length - from): void {
    let done = 0;
    while (done < len) done += writeSync(this.fd, data, from + done, len - done, pos + done);
  }

  /**
   * Records blocks as allocated: `entries` are block numbers, with ZERO_FLAG for zero blocks. Call only after
   * the blocks' data is written, so the log never runs ahead of the data.
   */
  record(entries: readonly number[]): void {
    if (entries.length === 0) return;
    const buf = Buffer.allocUnsafe(entries.length * 4);
    for (let i = 0; i < entries.length; i++) buf.writeUInt32LE(entries[i]! >>> 0, i * 4);
    let done = 0;
    while (done < buf.length) done += writeSync(this.logFd, buf, done, buf.length - done);
    for (const e of entries) {
      const b = (e & ~ZERO_FLAG) >>> 0;
      const bit = 1 << (b & 31);
      if (e & ZERO_FLAG) Atomics.or(this.zeroBits, b >>> 5, bit);
      else Atomics.and(this.zeroBits, b >>> 5, ~bit);
      Atomics.or(this.allocBits, b >>> 5, bit);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
    closeSync(this.logFd);
  }
}
