/**
 * Disk snapshots and their views. A view reads a frozen layer chain: what a
 * disk snapshot hands to the data plane. Frozen layers never change while the view is open (the guest
 * writes the overlay above them), so the driver reads them concurrently with
 * the guest. Reads are asynchronous and large: one read call per run of
 * contiguous blocks from the same layer; holes cost a memset, no I/O.
 */
import { read } from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError, newId } from '../../../../shared/src/mod.js';
import type { BlockChanges, DiskInfo, DiskSnapshot, DiskView, SnapshotOutcome } from '../driver.js';
import type { LayerFile } from './layer-io.js';

function readFully(fd: number, into: Buffer, at: number, len: number, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done >= len) return resolve();
      read(fd, into, at + done, len - done, pos + done, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(new Error(`short read at ${pos + done}`));
        step(done + n);
      });
    };
    step(0);
  });
}

export class ChainView implements DiskView {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  readonly blockCount: number;

  constructor(
    info: DiskInfo,
    /** Bottom first. */
    private readonly layers: readonly LayerFile[],
    private readonly isOpen: () => boolean,
  ) {
    this.name = info.name;
    this.sizeBytes = info.sizeBytes;
    this.blockSize = info.blockSize;
    this.blockCount = info.blockCount;
  }

  /**
   * One bit per block (bit b & 31 of word b >>> 5): the blocks the layers above `base` hold, where `base` (layer
   * ids, bottom first) must be the bottom of this view's chain.
   */
  blocksAbove(base: readonly string[]): Uint32Array {
    if (base.length > this.layers.length || base.some((id, i) => this.layers[i]!.id !== id)) {
      throw new InvalidArgumentError(`disk '${this.name}': the given chain is not the base of this snapshot's`);
    }
    const bits = new Uint32Array(Math.ceil(this.blockCount / 32));
    for (let i = base.length; i < this.layers.length; i++) {
      const l = this.layers[i]!;
      for (let b = 0; b < this.blockCount; b++) if (l.holds(b)) bits[b >>> 5]! |= 1 << (b & 31);
    }
    return bits;
  }

  /** Index of the layer to read block b from, or -1 when it reads as zeros. */
  private source(b: number): number {
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const l = this.layers[i]!;
      if (l.holds(b)) return l.isZero(b) ? -1 : i;
    }
    return -1;
  }

  /** False when the block reads as zeros without I/O: never written in the chain, or last written as zeros. */
  isAllocated(block: number): boolean {
    return this.source(block) >= 0;
  }

  async read(first: number, count: number, into: Buffer): Promise<void> {
    if (!this.isOpen()) throw new FailedPreconditionError(`the snapshot of disk '${this.name}' is released`);
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > this.blockCount) {
      throw new InvalidArgumentError(`blocks ${first}+${count} are outside disk '${this.name}' (${this.blockCount} blocks)`);
    }
    if (into.length < count * this.blockSize) throw new InvalidArgumentError(`a buffer of ${into.length} bytes cannot hold ${count} blocks`);
    const bs = this.blockSize;
    const reads: Promise<void>[] = [];
    const end = first + count;
    let b = first;
    while (b < end) {
      const src = this.source(b);
      let e = b + 1;
      while (e < end && this.source(e) === src) e++;
      const at = (b - first) * bs;
      if (src < 0) into.fill(0, at, at + (e - b) * bs);
      else reads.push(readFully(this.layers[src]!.fd, into, at, (e - b) * bs, b * bs));
      b = e;
    }
    await Promise.all(reads);
  }
}

/** Who ends a snapshot: the VM, which merges its layers back unless it is shareable. */
export interface SnapshotOwner {
  releaseSnapshot(s: SimDiskSnapshot, outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void>;
}

/** A point-in-time snapshot of a VM's disks: views of the frozen chains, and the changes its checkpoint took. */
export class SimDiskSnapshot implements DiskSnapshot {
  readonly id = newId('snap');
  readonly disks: ChainView[];
  released = false;

  constructor(
    private readonly owner: SnapshotOwner,
    frozen: { info: DiskInfo; layers: LayerFile[] }[],
    readonly changes: (BlockChanges | null)[],
    readonly chains: string[][],
    readonly checkpoint: boolean,
    readonly shareable: boolean,
  ) {
    this.disks = frozen.map((f) => new ChainView(f.info, f.layers, () => !this.released));
  }

  release(outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void> {
    if (this.released) return Promise.resolve();
    this.released = true;
    return this.owner.releaseSnapshot(this, outcome, alsoChanged);
  }
}
