/**
 * Changed-block tracking with the semantics of QEMU's persistent dirty
 * bitmaps: per disk, a checkpoint id (`since`) and a bit per block the guest
 * wrote after it. The bitmap is a SharedArrayBuffer the guest worker sets bits
 * in. It survives a clean stop only: the record on disk is marked in use while
 * the VM is loaded, so after a crash tracking is lost and the next backup is
 * full, never a wrong incremental.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../../../../shared/src/mod.js';
import type { BlockChanges, SnapshotOutcome } from '../driver.js';
import { writeJsonAtomic } from './chain-record.js';
import { bitmapWords } from './layer-io.js';

export const CBT_FILE = 'cbt.json';

interface CbtDiskRecord {
  since: string;
  lost: boolean;
  /** Base64 of the little-endian bitmap words; only in a clean record. */
  bitmap?: string;
}

interface CbtRecord {
  clean: boolean;
  disks: CbtDiskRecord[];
}

export class ChangeTracker {
  /** The bitmap the guest worker sets bits in. */
  readonly buffer: SharedArrayBuffer;
  private readonly bits: Int32Array;
  /** The last committed checkpoint, or '' for "since the disk was created". */
  since = '';
  /** Tracking was lost (an unclean stop) or invalidated: no changes until a checkpoint commits. */
  lost = false;
  /** The bits a checkpoint took, until its snapshot is released. */
  private taken: { id: string; bitmap: Uint32Array } | null = null;

  constructor(readonly blockCount: number) {
    this.buffer = new SharedArrayBuffer(bitmapWords(blockCount) * 4);
    this.bits = new Int32Array(this.buffer);
  }

  get checkpointOpen(): boolean {
    return this.taken !== null;
  }

  /** At a snapshot's frozen moment: takes the bits since the last checkpoint (the guest now sets them afresh). */
  checkpoint(id: string): BlockChanges | null {
    if (this.taken) throw new FailedPreconditionError(`checkpoint '${this.taken.id}' is still open`);
    const bitmap = new Uint32Array(this.bits.length);
    for (let w = 0; w < bitmap.length; w++) bitmap[w] = Atomics.exchange(this.bits, w, 0) >>> 0;
    this.taken = { id, bitmap };
    return this.lost ? null : { since: this.since, bitmap: bitmap.slice() };
  }

  /** Ends the open checkpoint: commit makes it the new base, abort puts its bits back, invalidate drops tracking. */
  settle(outcome: SnapshotOutcome, alsoChanged?: Uint32Array | null): void {
    const t = this.taken;
    if (!t) return;
    this.taken = null;
    if (outcome === 'commit') {
      this.since = t.id;
      this.lost = alsoChanged === null;
      // Blocks the committed backup holds differently from this disk (a clone's own writes) differ from the
      // new base: they count as changed, or the next incremental would carry the clone's bytes.
      if (alsoChanged) {
        if (alsoChanged.length !== this.bits.length) this.lost = true;
        else for (let w = 0; w < alsoChanged.length; w++) if (alsoChanged[w] !== 0) Atomics.or(this.bits, w, alsoChanged[w]! | 0);
      }
    } else if (outcome === 'abort') {
      for (let w = 0; w < t.bitmap.length; w++) if (t.bitmap[w] !== 0) Atomics.or(this.bits, w, t.bitmap[w]! | 0);
    } else {
      this.lost = true;
    }
  }

  /** Marks blocks as changed by a write that did not come from the guest (after its data is down). */
  mark(blocks: readonly number[]): void {
    for (const b of blocks) Atomics.or(this.bits, b >>> 5, 1 << (b & 31));
  }

  /** A clone takes over its source's tracking; later guest writes add to it. null marks tracking lost. */
  inherit(changes: BlockChanges | null): void {
    if (this.taken) throw new FailedPreconditionError(`checkpoint '${this.taken.id}' is still open`);
    if (!changes) {
      this.lost = true;
      return;
    }
    if (changes.bitmap.length !== this.bits.length) {
      throw new InvalidArgumentError(`a change bitmap for ${this.blockCount} blocks has ${this.bits.length} words, not ${changes.bitmap.length}`);
    }
    for (let w = 0; w < this.bits.length; w++) Atomics.store(this.bits, w, changes.bitmap[w]! | 0);
    this.since = changes.since;
    this.lost = false;
  }

  private toRecord(clean: boolean): CbtDiskRecord {
    if (!clean) return { since: this.since, lost: this.lost };
    const words = new Uint32Array(this.bits.length);
    for (let w = 0; w < words.length; w++) words[w] = Atomics.load(this.bits, w) >>> 0;
    return { since: this.since, lost: this.lost, bitmap: Buffer.from(words.buffer).toString('base64') };
  }

  private restore(r: CbtDiskRecord | undefined): void {
    const raw = r?.bitmap === undefined ? undefined : Buffer.from(r.bitmap, 'base64');
    if (!r || typeof r.since !== 'string' || !raw || raw.length !== this.bits.length * 4) {
      this.lost = true;
      return;
    }
    for (let w = 0; w < this.bits.length; w++) Atomics.store(this.bits, w, raw.readInt32LE(w * 4));
    this.since = r.since;
    this.lost = r.lost === true;
  }

  /**
   * Writes every disk's tracking to the VM's directory. `clean` only on a clean stop: while the VM is loaded
   * the record says "in use", which a later load reads as lost.
   */
  static save(vmDir: string, trackers: readonly ChangeTracker[], clean: boolean): void {
    const record: CbtRecord = { clean, disks: trackers.map((t) => t.toRecord(clean)) };
    writeJsonAtomic(join(vmDir, CBT_FILE), record);
  }

  /** Loads tracking for disks of these sizes and marks the record in use again. */
  static load(vmDir: string, blockCounts: readonly number[]): ChangeTracker[] {
    const trackers = blockCounts.map((n) => new ChangeTracker(n));
    let record: Partial<CbtRecord> = {};
    const file = join(vmDir, CBT_FILE);
    try {
      if (existsSync(file)) record = JSON.parse(readFileSync(file, 'utf8')) as Partial<CbtRecord>;
    } catch {
      record = {};
    }
    trackers.forEach((t, i) => t.restore(record.clean === true ? record.disks?.[i] : undefined));
    ChangeTracker.save(vmDir, trackers, false);
    return trackers;
  }
}
