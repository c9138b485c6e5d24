/**
 * The hypervisor driver interface. The agent talks only to this; its start-up
 * file picks the implementation (`sim` today, `qemu` later).
 */
import type { VmInfo, VmRunState, VmSpec } from '../../../shared/src/mod.js';

/** vCPU and device state as the driver serialises it; opaque to the data plane. */
export interface MachineStateBlob {
  vcpu: Buffer;
  devices: Buffer;
}

/**
 * Page-level access to a VM's memory for the pre-copy engine. The dirty log
 * works like KVM's: a bit per page, set by the guest after each write.
 */
export interface GuestPages {
  readonly pageSize: number;
  readonly pageCount: number;
  /** Number of 32-bit words in the dirty bitmap. */
  readonly dirtyWords: number;
  /** Clears every dirty bit: the start of dirty logging. */
  clearDirtyLog(): void;
  /** Atomically reads and clears one word of the dirty bitmap. Clear before copy. */
  takeDirtyWord(word: number): number;
  /** Counts dirty pages without clearing them. */
  countDirty(): number;
  /** A view (no copy) of one page of guest memory. */
  page(index: number): Buffer;
  /** Target side: writes one page. */
  writePage(index: number, data: Buffer): void;
  /** Target side: zeroes one page. */
  zeroPage(index: number): void;
}

export interface DriverVm {
  readonly id: string;
  readonly spec: VmSpec;
  readonly cloneOf: string;
  readonly state: VmRunState;
  /** Starts or resumes the guest. */
  run(): Promise<void>;
  /** Suspends the guest; resolves once the vCPUs have stopped (a real handshake). */
  suspend(): Promise<void>;
  /** SHA-256 of guest memory, hex. Meaningful when suspended. */
  memoryHash(): Promise<string>;
  /** Distinct pages dirtied per second, measured over a window. */
  measureDirtyRate(windowMs: number): Promise<number>;
  pages(): GuestPages;
  saveState(): MachineStateBlob;
  loadState(state: MachineStateBlob): void;
  /** Guest writes since start (for tests and progress). */
  guestWrites(): number;
  info(host: string): VmInfo;
}

export interface CreateVmOptions {
  /** Create the VM suspended with empty memory, awaiting incoming state (a clone target). */
  incoming?: boolean;
  cloneOf?: string;
}

export interface HypervisorDriver {
  readonly name: string;
  create(spec: VmSpec, opts?: CreateVmOptions): Promise<DriverVm>;
  get(id: string): DriverVm | undefined;
  list(): DriverVm[];
  destroy(id: string): Promise<boolean>;
  close(): Promise<void>;
}
