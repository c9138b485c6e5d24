/**
 * The memory freeze of a hot clone (seed 004) in the simulated guest: while the
 * memory is frozen, the guest runs on and each of its writes goes to a bounded
 * write buffer instead of guest memory, so the memory holds the frozen image
 * until it has been copied. Unfreezing merges the buffered writes back into the
 * memory in the order they were made.
 *
 * The buffer lives in SharedArrayBuffers: the guest worker is its only appender;
 * the driver merges it on its own thread while the guest runs on and keeps
 * appending, and the guest ends the freeze the first time it finds everything it
 * appended merged (or merges the rest itself before a stop). Used by both
 * threads, so it imports nothing heavy.
 *
 * Entry layout: one guest write is one 64-byte line, stored as its line number
 * and its 16 words (17 Uint32 words per entry). A guest that reads memory would
 * look a line up in the buffer first; the simulated guest only writes.
 */

/** A write touches one 64-byte line of 16 words. */
export const LINE_WORDS = 16;
/** Uint32 words per buffered write: the line number, then the line. */
export const ENTRY_WORDS = LINE_WORDS + 1;
export const ENTRY_BYTES = ENTRY_WORDS * 4;
/** Uint32 words per journal entry (tests): the line number and the write's counter. */
export const JOURNAL_WORDS = 2;

/** Int32 header words. */
export const HDR = {
  /** Writes appended to the buffer. */
  appended: 0,
  /** Writes merged back into memory. */
  merged: 1,
  /** Journal entries written (tests only). */
  journaled: 2,
  /** Times the guest found the buffer full and had to wait. */
  fullWaits: 3,
  length: 4,
} as const;

/** Float64 statistics words, times as epoch milliseconds (both threads' clocks agree on it). */
export const STAT = {
  /** When each level froze, slowest first: device and disk caches, RAM, vCPU. */
  ioFrozenAt: 0,
  ramFrozenAt: 1,
  vcpuFrozenAt: 2,
  /** When the merge started and ended. */
  mergeStartAt: 3,
  mergeEndAt: 4,
  /** Total time the guest could not write (the freeze step, waits on a full buffer), and its longest stretch. */
  stallMs: 5,
  maxStallMs: 6,
  length: 8,
} as const;

/** What the driver hands the worker for one freeze. */
export interface HotBuffers {
  entries: SharedArrayBuffer;
  hdr: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** The machine-state words as they were at the vCPU level of the freeze. */
  frozenMachine: SharedArrayBuffer;
  /** Line number and counter of every buffered write, for tests to check the merge against; null when not asked for. */
  journal: SharedArrayBuffer | null;
}

export function newHotBuffers(bufferBytes: number, machineWords: number, journal: boolean): HotBuffers {
  const capacity = Math.max(1, Math.floor(bufferBytes / ENTRY_BYTES));
  return {
    entries: new SharedArrayBuffer(capacity * ENTRY_BYTES),
    hdr: new SharedArrayBuffer(HDR.length * 4),
    stats: new SharedArrayBuffer(STAT.length * 8),
    frozenMachine: new SharedArrayBuffer(machineWords * 4),
    journal: journal ? new SharedArrayBuffer(capacity * JOURNAL_WORDS * 4) : null,
  };
}

export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One side's handle on a freeze's buffers. */
export class WriteBuffer {
  readonly capacity: number;
  private readonly entries: Uint32Array;
  readonly hdr: Int32Array;
  readonly stats: Float64Array;
  private readonly journal: Uint32Array | null;

  constructor(readonly buffers: HotBuffers) {
    this.entries = new Uint32Array(buffers.entries);
    this.capacity = this.entries.length / ENTRY_WORDS;
    this.hdr = new Int32Array(buffers.hdr);
    this.stats = new Float64Array(buffers.stats);
    this.journal = buffers.journal ? new Uint32Array(buffers.journal) : null;
  }

  get appended(): number {
    return Atomics.load(this.hdr, HDR.appended);
  }

  get merged(): number {
    return Atomics.load(this.hdr, HDR.merged);
  }

  get full(): boolean {
    return this.appended >= this.capacity;
  }

  /** Everything appended has been merged. */
  get drained(): boolean {
    return this.merged >= this.appended;
  }

  /** Buffers one line write; the caller checked `full`. `counter` goes to the journal. */
  append(line: number, data: Uint32Array, counter: number): void {
    const n = this.appended;
    const at = n * ENTRY_WORDS;
    this.entries[at] = line;
    this.entries.set(data, at + 1);
    if (this.journal) {
      const j = Atomics.load(this.hdr, HDR.journaled);
      this.journal[j * JOURNAL_WORDS] = line;
      this.journal[j * JOURNAL_WORDS + 1] = counter;
      Atomics.store(this.hdr, HDR.journaled, j + 1);
    }
    // The entry is written before the count that makes it visible.
    Atomics.store(this.hdr, HDR.appended, n + 1);
  }

  /**
   * Merges up to `max` buffered writes, oldest first, into `mem32`, setting each page's dirty bit after its data
   * (a pre-copy that runs later sees them). Returns how many it merged.
   */
  mergeSome(mem32: Uint32Array, dirty: Int32Array, wordsPerPage: number, max: number): number {
    const from = this.merged;
    const to = Math.min(this.appended, from + max);
    const e = this.entries;
    for (let i = from; i < to; i++) {
      const at = i * ENTRY_WORDS;
      const base = e[at]! * LINE_WORDS;
      // A plain loop: a subarray per entry would allocate, and the collector would stall the guest.
      for (let k = 0; k < LINE_WORDS; k++) mem32[base + k] = e[at + 1 + k]!;
      const page = Math.floor(base / wordsPerPage);
      Atomics.or(dirty, page >>> 5, 1 << (page & 31));
    }
    Atomics.store(this.hdr, HDR.merged, to);
    return to - from;
  }

  /** Adds one stretch of time in which the guest could not write. */
  addStall(ms: number): void {
    this.stats[STAT.stallMs] = this.stats[STAT.stallMs]! + ms;
    if (ms > this.stats[STAT.maxStallMs]!) this.stats[STAT.maxStallMs] = ms;
  }

  /** The journal's entries so far (a copy): line numbers and counters, interleaved. */
  journalEntries(): Uint32Array | null {
    if (!this.journal) return null;
    return this.journal.slice(0, Atomics.load(this.hdr, HDR.journaled) * JOURNAL_WORDS);
  }
}
