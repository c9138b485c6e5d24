/**
 * The hypervisor driver interface. The agent talks only to this; its start-up
 * file picks the implementation (`sim` today, `qemu` later).
 */
import type { ClusterConfig, VmExportConfig, VmInfo, VmRunState, VmSpec } from '../../../shared/src/mod.js';

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

/** One disk as the driver presents it. */
export interface DiskInfo {
  readonly name: string;
  readonly sizeBytes: number;
  /** DISK_BLOCK_SIZE (64 KiB). */
  readonly blockSize: number;
  readonly blockCount: number;
}

/** A read-only, point-in-time view of one disk. */
export interface DiskView extends DiskInfo {
  /**
   * False when the block reads as zeros with no data behind it: a hole (never written anywhere in the disk's
   * chain) or a block last written as zeros. A copier into a blank disk may skip such blocks.
   */
  isAllocated(block: number): boolean;
  /** Reads blocks [first, first + count) into `into` (holes read as zeros). `into` holds at least count * blockSize bytes. */
  read(first: number, count: number, into: Buffer): Promise<void>;
}

/**
 * Changed-block tracking (CBT) relative to a checkpoint, as QEMU's persistent
 * dirty bitmaps: one bit per block, set by every guest write.
 */
export interface BlockChanges {
  /** The checkpoint these changes are relative to (a backup id), or '' for "since the disk was created". */
  since: string;
  /** One bit per block: block b is bit (b & 31) of word (b >>> 5). */
  bitmap: Uint32Array;
}

/** How a snapshot ends, for the change tracking it started. */
export type SnapshotOutcome =
  /** The backup made from it is committed: its checkpoint becomes the base of the next changes. */
  | 'commit'
  /** The backup failed: its changes are merged back, as if it never happened. */
  | 'abort'
  /** Unknown outcome: tracking is dropped, so the next backup is full (never a wrong incremental). */
  | 'invalidate';

/** A point-in-time snapshot of all of a VM's disks. */
export interface DiskSnapshot {
  readonly id: string;
  /** One view per disk, in spec order. */
  readonly disks: DiskView[];
  /**
   * Per disk, the blocks changed since the last committed checkpoint, up to this snapshot; null when
   * tracking was lost (an unclean agent stop) or invalidated. Empty when no checkpoint was asked for. The bits
   * are taken in the frozen moment, so they match the views exactly.
   */
  readonly changes: (BlockChanges | null)[];
  /**
   * For a shared datastore: per disk, the frozen layer chain (datastore-relative ids) that another host on the
   * same datastore can use as the base of an overlay. Empty unless taken with `shareable`. Link them while the
   * snapshot is open: once it is released, the VM may take back layers no other VM uses, and a link then fails.
   */
  readonly chains: string[][];
  /**
   * Ends the snapshot (idempotent). The VM's own disk never loses a write. With 'commit', `alsoChanged` (per
   * disk) names blocks the committed backup holds differently from this disk as of the snapshot (a backup
   * clone's own writes): they count as changed since the new checkpoint. `null` for a disk drops its tracking.
   */
  release(outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void>;
}

export interface SnapshotOptions {
  /**
   * Starts a change-tracking checkpoint with this id (a backup id); `changes` then reports what changed since the
   * last committed one. One checkpoint per VM may be open at a time.
   */
  checkpoint?: string;
  /**
   * Keep the frozen layers as an immutable base other VMs may share (a linked clone on a shared datastore): the
   * VM's chain keeps one more layer while another VM uses the base. Once none does (checked at the VM's next
   * release, settleDisks, snapshot or load), the VM takes the base back and folds its newer layers into it, as
   * after any other snapshot. A base another VM uses is deleted with its last user.
   */
  shareable?: boolean;
}

/**
 * A VM's cumulative resource counters since its vCPU last started (for usage rates over a window). A driver
 * reports 0 for what its guests never do, and null for a CPU time it cannot measure.
 */
export interface VmUsageCounters {
  /** CPU time of the vCPU thread(s), ms; null when the host cannot tell. */
  cpuMs: number | null;
  diskReadBytes: number;
  diskWriteBytes: number;
  netRxBytes: number;
  netTxBytes: number;
}

/** A persistent storage snapshot's frozen chains, as createStorageSnapshot made them. */
export interface StorageSnapshotMade {
  /** Per disk, in spec order: the frozen layer ids, bottom first (datastore-relative). */
  chains: string[][];
  /** How long the guest was paused for the freeze (0 when it was not running). */
  pauseMs: number;
}

/** One level of a hot clone's freeze: they freeze slowest first. */
export interface FreezeLevel {
  level: 'io' | 'ram' | 'vcpu';
  /** What the level holds, for people. */
  what: string;
  /** When it froze, epoch milliseconds (sub-millisecond precision). */
  frozenAt: number;
}

/** How a hot freeze went, once its buffered writes are merged back. */
export interface HotFreezeStats {
  /** Guest memory writes that went to the buffer while the memory was frozen (including during the merge). */
  bufferedWrites: number;
  /** Buffered writes merged back into memory: all of them. */
  mergedWrites: number;
  /** Total time the guest could not write: the freeze step, the merge steps, and waits on a full buffer. */
  stallMs: number;
  /** The longest single stretch of it. */
  maxStallMs: number;
  /** Times the guest found the buffer full. */
  fullWaits: number;
  /** From the RAM freeze to the end of the merge. */
  frozenMs: number;
  mergeMs: number;
}

/**
 * A hot clone's freeze (seed 004) of a running VM, which never stops: its disks took new overlays (the frozen
 * layers are `disks`), its memory writes go to buffers (so `pages` reads the frozen image), and `state` is its vCPU
 * and device state at the freeze. `unfreeze` merges the buffers back; until then the freeze holds.
 */
export interface HotFreeze {
  readonly levels: FreezeLevel[];
  /** The frozen memory, read in place (do not write it). */
  readonly pages: GuestPages;
  readonly state: MachineStateBlob;
  /** The frozen disks: shareable (chains set), without a checkpoint. Release it once the clone has its disks. */
  readonly disks: DiskSnapshot;
  /** Writes buffered so far. */
  bufferedWrites(): number;
  /** The buffer is full: the guest waits (its memory writes stall) until the unfreeze merges it. */
  bufferFull(): boolean;
  /** SHA-256 of the frozen memory image, hex. */
  frozenHash(): Promise<string>;
  /** Merges the buffered writes into memory, in order, and ends the freeze (idempotent). */
  unfreeze(): Promise<HotFreezeStats>;
  /** Tests: line numbers and write counters of every buffered write (interleaved), when asked for at the freeze. */
  journal(): Uint32Array | null;
}

/** Hot-freeze buffers above this are refused: they live in the agent's memory next to the guest's. */
export const HOT_BUFFER_MAX_BYTES = 256 * 1024 * 1024;

export interface HotFreezeOptions {
  /** Bound on the write buffer (default 64 MiB): a guest that fills it waits for the unfreeze. */
  bufferBytes?: number;
  /** Tests: keep a journal of the buffered writes. */
  journal?: boolean;
}

/** One disk layer a VM's chain holds on the datastore. */
export interface LayerUsage {
  disk: number;
  id: string;
  /** Bytes of data the layer holds. */
  bytes: number;
  /** In an immutable shared base, or referenced by another VM or a storage snapshot too. */
  shared: boolean;
}

/**
 * Where bypass volumes live (seed 001): the storage array's data path as the guest uses it. The array's own
 * management (snapshots, reads) is for the agent's array client, not the driver.
 */
export interface BypassStore {
  createVolume(name: string, sizeMib: number): Promise<unknown>;
  deleteVolume(name: string): Promise<unknown>;
  write(volume: string, offset: number, data: Buffer): Promise<unknown>;
  /** To delete a VM's volumes, the array snapshots that still cover them go first (backups' incremental bases). */
  listSnapshots(): Promise<{ id: string; volumes: { name: string }[] }[]>;
  deleteSnapshot(id: string): Promise<unknown>;
}

/** A bypass volume as the VM has it: its spec name and its volume on the array. */
export interface BypassVolumeInfo {
  name: string;
  /** The array's volume name: `<vm id>-<name>`. */
  volume: string;
  sizeBytes: number;
}

export interface DriverVm {
  readonly id: string;
  readonly spec: VmSpec;
  readonly cloneOf: string;
  readonly state: VmRunState;
  /**
   * Starts or resumes the guest. `isolateNetwork` cuts the guest's NIC off (a backup clone); it sticks until
   * destroy. An incoming clone or a restore becomes complete (kept across agent restarts) when it first runs.
   */
  run(opts?: { isolateNetwork?: boolean }): Promise<void>;
  readonly networkIsolated: boolean;
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
  /** Guest disk writes since start (for tests and progress). */
  diskWrites(): number;
  disks(): DiskInfo[];
  /**
   * A point-in-time snapshot of every disk, atomic against guest writes. A suspended VM is not paused
   * further; a running one is paused only for the freeze itself (well under a millisecond of work).
   */
  snapshotDisks(opts?: SnapshotOptions): Promise<DiskSnapshot>;
  /**
   * Resolves once no disk merge (from an earlier snapshot's release) runs, so that a snapshot taken next is
   * O(1); first folds back shared bases (of `shareable` snapshots) that no other VM uses any more. Call it
   * before suspending the VM for one: a merge finished while suspended would lengthen the pause.
   */
  settleDisks(): Promise<void>;
  /**
   * Target side (an incoming clone, a restore): writes whole blocks into disk `disk`. Only while not running.
   * Zero blocks cost no data. Blocks it changes get their change-tracking bits, as guest writes do, so an
   * incremental never misses them (a clone's inheritChanges then replaces the bits with the source's).
   */
  writeDiskBlocks(disk: number, first: number, data: Buffer): Promise<void>;
  /**
   * Target side, shared datastore (a linked clone): replaces the blank disks of an incoming VM by new overlays on
   * these frozen chains (from the source's `DiskSnapshot.chains`, one per disk). Only while not running.
   */
  linkDisks(chains: string[][]): Promise<void>;
  /**
   * A persistent copy-on-write snapshot of every disk, O(1) in disk size (no data is copied or hashed): the
   * frozen layers of a `shareable` snapshot are pinned in the datastore under `ref` (a file-name-safe string,
   * unique per snapshot), then the transient snapshot is released without touching change tracking. Pinned
   * layers stay an immutable shared base of the VM's chain (it cannot take them back while a pin holds them), so
   * the chain grows by one layer per snapshot and the snapshot reads the same whatever the VM writes later.
   * HypervisorDriver.unpinLayers(ref, chains) drops it. Call settleDisks first to keep the pause short.
   */
  createStorageSnapshot(ref: string): Promise<StorageSnapshotMade>;
  /**
   * Reverts the disks to frozen chains (a storage snapshot's): only while the VM is not running and has no open
   * disk snapshot. Its disks become fresh empty overlays on them, its previous own layers go (layers pinned by
   * snapshots stay), and change tracking of every disk is marked lost (the next backup is full).
   */
  revertDisks(chains: string[][]): Promise<void>;
  /** Layer ids per disk, bottom first (datastore-relative). */
  diskChains(): string[][];
  /** The layers of the VM's disks with what they hold: its own, and the shared bases it reads. */
  storageUsage(): LayerUsage[];
  /**
   * A hot clone's freeze (seed 004) of a running VM; it never enters the suspended state. The disks freeze first,
   * then RAM, then the vCPU, all at one point between two guest writes. Only one at a time.
   */
  hotFreeze(opts?: HotFreezeOptions): Promise<HotFreeze>;
  /** Times the VM went from running to suspended since it was created or loaded (a hot clone must not add one). */
  readonly suspendCount: number;
  /** The VM's bypass volumes on the storage array (seed 001), in spec order; the driver neither snapshots nor tracks them. */
  bypassVolumes(): BypassVolumeInfo[];
  /**
   * Resolves once every bypass write the guest has made is on the array (call it with the guest suspended: a
   * consistency fence). UnavailableError when the array does not take them within `timeoutMs`.
   */
  flushBypass(timeoutMs?: number): Promise<void>;
  /**
   * Per disk, one bit per block: the blocks `snap` holds in layers above `base` (the frozen chains of an earlier
   * storage snapshot of this VM, a prefix of the snapshot's chains): those written between the two.
   */
  blocksWrittenSince(base: string[][], snap: DiskSnapshot): Uint32Array[];
  /** Disk `disk` as it is now: consistent only while the guest is not running (for checks such as a revert's hash). */
  liveDiskView(disk: number): DiskView;
  /** Cumulative usage counters, for rates over a sample window. */
  usage(): VmUsageCounters;
  /**
   * Target side, before the clone runs: the clone takes over the source's change tracking (its base and bits;
   * its own guest writes add to them), so its next checkpoint covers both. null marks tracking lost.
   */
  inheritChanges(disk: number, changes: BlockChanges | null): void;
  /**
   * Declares an incoming VM (a clone, a restore) whole once its memory and disks arrived and were checked: from
   * then on an agent restart keeps it, even if it never ran. Until then (or its first run) a restart deletes it.
   */
  markComplete(): void;
  info(host: string): VmInfo;
}

export interface CreateVmOptions {
  /** Create the VM suspended with empty memory and blank disks, awaiting incoming state (a clone target, a restore). */
  incoming?: boolean;
  cloneOf?: string;
  /**
   * A restore target: memory as at a fresh boot (not incoming state), blank disks to be filled with
   * writeDiskBlocks, created suspended (not started) and incomplete until it first runs.
   */
  restore?: boolean;
  /** Shared datastore only: per disk, the base chain (from `DiskSnapshot.chains`) the VM's disks overlay instead of being blank. */
  linkedDisks?: string[][];
}

/** A datastore that several hosts may mount: hosts that report the same id see the same files. */
export interface DatastoreInfo {
  id: string;
  path: string;
}

export interface HypervisorDriver {
  readonly name: string;
  /** Where this host keeps disks; the id tells which hosts share it. */
  readonly datastore: DatastoreInfo;
  /**
   * Loads the VMs a previous run of the agent left. Disks and configuration persist; memory does not, so they come
   * back suspended as after a host reboot. Change tracking survives only a clean close(). VMs that never became
   * complete (an incoming clone or a restore that never ran) are deleted.
   */
  load(): Promise<DriverVm[]>;
  create(spec: VmSpec, opts?: CreateVmOptions): Promise<DriverVm>;
  get(id: string): DriverVm | undefined;
  list(): DriverVm[];
  /**
   * Stops the VM and deletes it with its own disk layers (shared bases stay while other disks use them, and so do
   * layers a storage snapshot pinned: they stay readable until the snapshot is unpinned).
   */
  destroy(id: string): Promise<boolean>;
  /**
   * Drops the pin `ref` (see DriverVm.createStorageSnapshot) from every layer of `chains`: a layer nobody else
   * references goes. VMs on this host whose chains hold those layers then fold back what they can. Idempotent.
   */
  unpinLayers(ref: string, chains: string[][]): Promise<void>;
  /** Drops every pin whose reference starts with `prefix` (ones a crash left behind); returns how many went. */
  dropPins(prefix: string): Promise<number>;
  /** The datastore's space (MiB): what its disks use, and what its filesystem has free. */
  datastoreSpace(): { usedMib: number; freeMib: number };
  /**
   * The export mechanism's instrumentation interface (seed 003): the VM's configuration as an export of it would
   * write it (NICs with their networks, disks with their format and place on the datastore, CPU model, memory),
   * read without exporting anything. `cluster` is the cluster this host is in: NICs and the datastore are named
   * by it.
   */
  describeExport(vmId: string, cluster: ClusterConfig): VmExportConfig;
  /** Read-only views of frozen chains in the datastore (a storage snapshot's), one per disk; close() closes the files. */
  openChainViews(disks: { name: string; sizeMib: number; layers: string[] }[]): { views: DiskView[]; close(): void };
  /** A clean stop: every VM stops and stays on disk for the next load(); change tracking is saved as clean. */
  close(): Promise<void>;
}
