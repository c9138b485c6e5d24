/**
 * Shared-memory layout of a simulated guest: the control words of the
 * suspend/resume handshake and the machine-state words that the guest worker
 * keeps current as it runs. Used by both the driver and the worker thread.
 */
export const CTRL = {
  /** Requested by the driver: RUN, SUSPEND or STOP. */
  cmd: 0,
  /** Acknowledged by the guest: RUNNING, SUSPENDED or STOPPED. */
  state: 1,
  length: 4,
} as const;

export const CMD = { run: 0, suspend: 1, stop: 2 } as const;
export const STATE = { running: 0, suspended: 1, stopped: 2, booting: 3 } as const;

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
  length: 24,
} as const;

export const VCPU_FIELDS = ['rip', 'rsp', 'rax', 'rbx', 'flags', 'tscLo', 'tscHi', 'prng0', 'prng1', 'prng2', 'prng3'] as const;
export const DEVICE_FIELDS = ['cursor', 'nicRx', 'nicTx', 'blkReads', 'blkWrites', 'timerTicks', 'writesLo', 'writesHi'] as const;

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
}
