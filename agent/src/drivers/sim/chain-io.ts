/**
 * A disk as a chain of layers, bottom first, the top one active: reads take a
 * block from the topmost layer holding it, writes copy the block up into the
 * layer they write first (qcow2 COW). Also the merge ("commit" in QEMU terms)
 * that folds the layers above the lowest mutable one back into it, in steps
 * small enough to run between guest write bursts.
 *
 * Synchronous, so the guest worker can use it between two writes; the driver
 * uses it only while the worker is parked or absent, so there is one writer.
 */
import { LayerFile, ZERO_FLAG, bitmapWords } from './layer-io.js';

/** Blocks a merge step copies at least; later steps copy more, so a merge always ends. */
const MERGE_STEP_BLOCKS = 32;

interface MergeState {
  /** One bit per block still to copy into the target. */
  pending: Int32Array;
  cursor: number;
  steps: number;
}

export class ChainIo {
  /** Bottom first; the last one is the active layer. */
  layers: LayerFile[];
  /** The bottom `shared` layers are immutable: a base other disks may use. The next one is the merge target. */
  shared: number;
  private merge: MergeState | null = null;
  private readonly scratch: Buffer;

  constructor(
    layers: LayerFile[],
    shared: number,
    readonly blockCount: number,
    readonly blockSize: number,
  ) {
    if (layers.length === 0) throw new Error('a disk chain needs at least one layer');
    if (shared >= layers.length) throw new Error(`a chain of ${layers.length} layers cannot have ${shared} shared ones`);
    this.layers = layers;
    this.shared = shared;
    this.scratch = Buffer.alloc(blockSize);
  }

  get top(): LayerFile {
    return this.layers[this.layers.length - 1]!;
  }

  /** Index of the topmost layer below `below` that holds block b, or -1 for a hole. */
  holder(b: number, below = this.layers.length): number {
    for (let i = below - 1; i >= 0; i--) if (this.layers[i]!.holds(b)) return i;
    return -1;
  }

  /** Reads the newest version of block b among layers [0, below) into `into` at `at`. */
  readBlock(b: number, into: Buffer, at = 0, below = this.layers.length): void {
    const h = this.holder(b, below);
    const layer = h < 0 ? undefined : this.layers[h]!;
    if (!layer || layer.isZero(b)) into.fill(0, at, at + this.blockSize);
    else layer.read(b * this.blockSize, this.blockSize, into, at);
  }

  /** Writes `data` at byte `off` of block b into layer `idx`, copying the block up from below first if needed. */
  writeInto(idx: number, b: number, off: number, data: Buffer): void {
    const layer = this.layers[idx]!;
    const pos = b * this.blockSize;
    if (layer.holdsData(b)) {
      layer.write(pos + off, data);
      return;
    }
    const block = this.scratch;
    if (layer.holds(b)) block.fill(0);
    else this.readBlock(b, block, 0, idx);
    data.copy(block, off);
    layer.write(pos, block);
    layer.record([b]);
  }

  /** Merge target: the lowest mutable layer. */
  private get target(): number {
    return this.shared;
  }

  /** The layers a merge folds into the target: all above it. */
  get mergeSources(): number {
    return this.layers.length - 1 - this.shared;
  }

  get merging(): boolean {
    return this.merge !== null;
  }

  /** A guest write: to the active layer, or during a merge, straight into the target when no source holds the block. */
  guestWrite(b: number, off: number, data: Buffer): void {
    const m = this.merge;
    if (!m) {
      this.writeInto(this.layers.length - 1, b, off, data);
      return;
    }
    if (this.holder(b) > this.target) {
      // A source shadows the target here: write on top and copy the block again later.
      this.writeInto(this.layers.length - 1, b, off, data);
      Atomics.or(m.pending, b >>> 5, 1 << (b & 31));
    } else {
      this.writeInto(this.target, b, off, data);
    }
  }

  /**
   * Starts folding the sources into the target. `pending` (one bit per block) may already hold bits from
   * another thread's attempt: they are kept, and every block a source holds is added.
   */
  startMerge(pending: Int32Array): void {
    if (pending.length < bitmapWords(this.blockCount)) throw new Error('merge bitmap too small');
    for (let i = this.target + 1; i < this.layers.length; i++) {
      const alloc = new Int32Array(this.layers[i]!.desc.alloc);
      for (let w = 0; w < alloc.length; w++) {
        const v = Atomics.load(alloc, w);
        if (v !== 0) Atomics.or(pending, w, v);
      }
    }
    this.merge = { pending, cursor: 0, steps: 0 };
  }

  cancelMerge(): void {
    this.merge = null;
  }

  /**
   * Copies up to a step's worth of pending blocks into the target. Returns true when nothing is pending: the
   * caller then records the shorter chain and calls finishMerge() before the guest writes again.
   */
  mergeStep(unlimited = false): boolean {
    const m = this.merge;
    if (!m) return true;
    const limit = unlimited ? Infinity : MERGE_STEP_BLOCKS * (1 + (m.steps >> 2));
    m.steps++;
    const words = m.pending.length;
    const target = this.layers[this.target]!;
    const entries: number[] = [];
    let copied = 0;
    let scanned = 0;
    while (scanned < words && copied < limit) {
      const w = m.cursor;
      let bits = Atomics.exchange(m.pending, w, 0);
      while (bits !== 0) {
        const low = bits & -bits;
        bits ^= low;
        const b = w * 32 + (31 - Math.clz32(low));
        if (copied >= limit) {
          Atomics.or(m.pending, w, low);
          continue;
        }
        copied++;
        const h = this.holder(b);
        if (h <= this.target) continue;
        const src = this.layers[h]!;
        if (src.isZero(b)) {
          if (!target.holds(b) || !target.isZero(b)) entries.push((b | ZERO_FLAG) >>> 0);
          continue;
        }
        src.read(b * this.blockSize, this.blockSize, this.scratch, 0);
        target.write(b * this.blockSize, this.scratch);
        if (!target.holdsData(b)) entries.push(b);
      }
      if (copied >= limit && Atomics.load(m.pending, w) !== 0) break;
      m.cursor = (w + 1) % words;
      scanned++;
    }
    target.record(entries);
    return copied === 0 && scanned >= words;
  }

  /** Ends a merge whose last step found nothing pending: drops the sources and returns them (still open). */
  finishMerge(): LayerFile[] {
    this.merge = null;
    return this.layers.splice(this.target + 1);
  }

  /** Folds the sources into the target in one go (the guest is not running). Returns the dropped layers. */
  mergeAll(): LayerFile[] {
    if (this.mergeSources === 0) return [];
    this.startMerge(new Int32Array(bitmapWords(this.blockCount)));
    while (!this.mergeStep(true));
    return this.finishMerge();
  }

  /** Layer ids, bottom first. */
  ids(): string[] {
    return this.layers.map((l) => l.id);
  }
}
