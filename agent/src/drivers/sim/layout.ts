/**
 * Shared-memory layout of a simulated guest: the control words of the
 * suspend/resume handshake and the machine-state words that the guest worker
 * keeps current as it runs, plus the disk data and the messages the driver and
 * the worker exchange. Used by both the driver and the worker thread.
 */
import type { MessagePort } from 'node:worker_threads';
import type { LayerDesc } from './layer-io.js';
import type { HotBuffers } from './hot-buffer.js';

export const CTRL = {
  /** Requested by the driver: RUN, SUSPEND or STOP. */
  cmd: 0,
  /** Acknowledged by the guest: RUNNING, SUSPENDED or STOPPED. */
  state: 1,
  /** 1 while the NIC is cut off: its counters stop. */
  netIsolated: 2,
  /** Requested by the driver for a hot clone: HOT_CMD. */
  hotCmd: 3,
  /** Acknowledged by the guest: HOT_STATE. */
  hotState: 4,
  /** The id of the hot freeze requested (its 'hot' message carries it); 0 after a withdrawn request. */
  hotId: 5,
  length: 8,
} as const;

export const CMD = { run: 0, suspend: 1, stop: 2 } as const;
export const STATE = { running: 0, suspended: 1, stopped: 2, booting: 3 } as const;
/**
 * A hot clone's memory freeze. The driver asks `freeze`; the guest commits to it by swapping it for `freezing`
 * (a driver that gives up swaps `freeze` back to `none`: exactly one of them wins), then takes the 'hot' message
 * of the current id, freezes, and acknowledges `frozen`. `unfreeze` asks it to end once the merge caught up.
 */
export const HOT_CMD = { none: 0, freeze: 1, unfreeze: 2, freezing: 3 } as const;
/** `failed`: the guest committed but found no 'hot' message for the request; it did not freeze. */
export const HOT_STATE = { live: 0, frozen: 1, merging: 2, failed: 3 } as const;

/** Machine-state words (Uint32). vCPU registers first, then device counters. */
export const MS = {
  // vCPU
  rip: 0,
  rsp: 1,
  rax: 2,
  rbx: 3,
  flags: 4,
  tscLo: 5,
  tscHi: 6,
  prng0: 7,
  prng1: 8,
  prng2: 9,
  prng3: 10,
  // devices
  cursor: 11,
  nicRx: 12,
  nicTx: 13,
  blkReads: 14,
  blkWrites: 15,
  timerTicks: 16,
  writesLo: 17,
  writesHi: 18,
  diskCursor: 19,
  diskWritesLo: 20,
  diskWritesHi: 21,
  /** The guest's last consistency-token step (seed 001's check); not part of the saved state. */
  tokenSeq: 22,
  length: 24,
} as const;

export const VCPU_FIELDS = ['rip', 'rsp', 'rax', 'rbx', 'flags', 'tscLo', 'tscHi', 'prng0', 'prng1', 'prng2', 'prng3'] as const;
export const DEVICE_FIELDS = [
  'cursor',
  'nicRx',
  'nicTx',
  'blkReads',
  'blkWrites',
  'timerTicks',
  'writesLo',
  'writesHi',
  'diskCursor',
  'diskWritesLo',
  'diskWritesHi',
] as const;

export const PATTERN_CODE = { uniform: 0, hotset: 1, sequential: 2 } as const;

export interface GuestBuffers {
  memory: SharedArrayBuffer;
  dirty: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
  machine: SharedArrayBuffer;
}

export interface GuestWorkerData {
  buffers: GuestBuffers;
  pageCount: number;
  pageSize: number;
  dirtyRate: number;
  pattern: number;
  hotBase: number;
  hotPages: number;
  /** The workload seed (the disk workload's hot set comes from it). */
  seed: number;
  /** 4 KiB disk writes per second over all disks. */
  diskWriteRate: number;
  disks: WorkerDisksData;
  /** Consistency-token steps per second (0: none). */
  tokenRate: number;
  /** The guest's bypass volumes (null: none). */
  bypass: WorkerBypassData | null;
}

/** Bypass volumes as the guest sees them: it writes them through its own initiator, not the hypervisor's disks. */
export interface WorkerBypassData {
  /** Sizes of the volumes, in spec order. */
  sizes: number[];
  /** 4 KiB writes per second to them (besides the token). */
  writeRate: number;
  /** The guest posts `BypassWrite`s here; the initiator (main thread) sends them to the array in order. */
  port: MessagePort;
  /** Int32 [0]: writes posted and not yet acknowledged by the array; the guest waits at BYPASS_MAX_OUTSTANDING. */
  outstanding: SharedArrayBuffer;
}

/** A guest write to a bypass volume. */
export interface BypassWrite {
  volume: number;
  offset: number;
  data: Uint8Array;
}

/** Bound on the guest's bypass writes in flight to the array (an initiator's queue depth). */
export const BYPASS_MAX_OUTSTANDING = 256;

/** One disk's chain as the worker opens it. */
export interface WorkerChain {
  layers: LayerDesc[];
  shared: number;
}

/** The guest's disks: the worker is their only writer while it runs. */
export interface WorkerDisksData {
  /** Where the worker rewrites the chain record when it ends a merge. */
  vmDir: string;
  blockSize: number;
  blockCounts: number[];
  chains: WorkerChain[];
  /** Per disk, the changed-block-tracking bitmap the worker sets a bit in after each write. */
  cbt: SharedArrayBuffer[];
  /** Per disk, the blocks a merge still has to copy. */
  pending: SharedArrayBuffer[];
  /** Int32 per disk: the merge the driver asked for (its id), 0 when none; the worker zeroes it when done. */
  mergeCtl: SharedArrayBuffer;
  /** Messages both ways; the worker reads it synchronously (receiveMessageOnPort) between writes. */
  port: MessagePort;
}

/**
 * Driver to worker. `chain` replaces every chain and drops any merge in progress. `merge` folds the layers above
 * the disk's bottom `shared` ones into the lowest mutable one; `shared` may be lower than the chain's (the driver
 * took frozen bases back that no other VM uses any more).
 */
export type ToWorker =
  | { t: 'chain'; chains: WorkerChain[] }
  | { t: 'merge'; disk: number; id: number; shared: number }
  /**
   * A hot freeze: the worker holds it (and every message after it) until the driver's HOT_CMD.freeze, then takes
   * the chains (the disk level), starts buffering memory writes and copies the vCPU state, all in one step.
   */
  | { t: 'hot'; id: number; chains: WorkerChain[]; buffers: HotBuffers };

/** Worker to driver: a merge ended; `dropped` are the layers no longer in the chain (the chain record is written). */
export type FromWorker = { t: 'merged'; disk: number; id: number; dropped: string[] };
