/**
 * Plain JSON types that travel over NATS (commands, heartbeats, events) and that
 * the coordinator keeps in KV. The gRPC API uses the generated proto types; the
 * shapes below are kept field-compatible with them.
 */
import type { ErrorJson } from '../errors.js';
import type { VmIdentity } from '../identity.js';
import type { ClusterConfig, DatastoreState, RestorePlan } from '../cluster/types.js';

export const WORKLOAD_PATTERNS = ['uniform', 'hotset', 'sequential'] as const;
export type WorkloadPattern = (typeof WORKLOAD_PATTERNS)[number];

export interface WorkloadSpec {
  /** Pages per second the guest writes (0 = idle). */
  dirtyRate: number;
  pattern: WorkloadPattern;
  seed: number;
  /** 4 KiB disk writes per second the guest makes, spread over its disks with the same pattern (0 = none). */
  diskWriteRate: number;
  /**
   * Consistency-token steps per second (0 = none): each step writes an increasing sequence number with a checksum
   * to the last 4 KiB of the first disk and to the first 4 KiB of the first bypass volume, in that one step.
   */
  tokenRate?: number;
  /** 4 KiB writes per second the guest makes to its bypass volumes, straight to the array (0 = none). */
  bypassWriteRate?: number;
}

/**
 * A volume the guest writes directly on the storage array (a pass-through LUN, iSCSI from inside the guest): the
 * hypervisor neither snapshots nor tracks it. It lives on the array as `<vm id>-<name>`.
 */
export interface BypassVolumeSpec {
  name: string;
  sizeMib: number;
}

/** Disks are cut into blocks of this size: the unit of allocation, change tracking and the disk data plane. */
export const DISK_BLOCK_SIZE = 64 * 1024;

export interface DiskSpec {
  /** Unique within the VM, e.g. `disk0`. */
  name: string;
  sizeMib: number;
  /**
   * The template the disk starts from: '' is a blank (all-hole) disk; any other name generates the same
   * content on every host, so two VMs made from one image share their base blocks (and backup chunks).
   */
  image: string;
}

/** A NIC, attached to a network of the VM's cluster (its MAC is the identity's for nic0). */
export interface NicSpec {
  network: string;
}

export interface VmSpec {
  name: string;
  /** NICs, each on a network of the host's cluster; none by default. */
  nics?: NicSpec[];
  /** The CPU model the guest sees (one of the cluster's); default: the cluster's first. */
  cpuModel?: string;
  /** Volumes on the storage array the guest writes bypassing the hypervisor (seed 001); none by default. */
  bypass?: BypassVolumeSpec[];
  memoryMib: number;
  vcpus: number;
  workload: WorkloadSpec;
  disks: DiskSpec[];
  /** UUID, MAC, hostname and machine id; the driver gives a VM created without one a new one (and keeps it). */
  identity?: VmIdentity;
}

export type VmRunState = 'running' | 'suspended';

export interface VmInfo extends VmSpec {
  id: string;
  host: string;
  state: VmRunState;
  cloneOf: string;
  /** A backup clone runs with its network cut off, so it never answers for the source. */
  networkIsolated: boolean;
  /** Every VM a driver reports has one. */
  identity: VmIdentity;
}

export interface Capacity {
  memoryMib: number;
  cpus: number;
  maxVms: number;
}

export interface Heartbeat {
  name: string;
  dataAddr: string;
  driver: string;
  /** How the driver runs guests: 'kvm' or 'tcg' on qemu (KVM when it works), 'sim' on sim. Older agents: absent. */
  accel?: string;
  capacity: Capacity;
  usedMemoryMib: number;
  vms: VmInfo[];
  rssBytes: number;
  peakRssBytes: number;
  startedAt: string;
  /** Hosts reporting the same datastore id share their disk storage (linked clones need no disk copy). */
  datastore: string;
  /** The cluster this host belongs to (`--cluster`, default 'default'). */
  cluster: string;
  /** The datastore's directory on this host, and its space: used by disk layers, free on its filesystem (MiB). */
  datastorePath: string;
  datastoreUsedMib: number;
  datastoreFreeMib: number;
  /** The agent has a storage array (`--array`): it can hold VMs with bypass volumes. */
  array: boolean;
  sentAt: string;
  /** `stopping` is sent once on a clean shutdown so the host is down at once. */
  status: 'up' | 'stopping';
  intervalMs: number;
}

export interface HostRecord extends Heartbeat {
  /** Derived when read: up while heartbeats arrive, down after three missed ones. */
  state: 'up' | 'down';
}

// ---- coordinator -> agent commands (NATS request/reply) ----

export interface ClonePrepareArgs {
  jobId: string;
  source: VmInfo;
  name: string;
  /** The clone's own identity (a new UUID, MAC and machine id), chosen by the coordinator. */
  identity: VmIdentity;
}

export interface CloneStartArgs {
  jobId: string;
  vmId: string;
  targetHost: string;
  targetAddr: string;
  targetVmId: string;
  thresholdPages: number;
  maxRounds: number;
  verify: boolean;
  fault: string;
  maxBandwidthBytesPerS: number;
  /** The target shares this host's datastore: the clone overlays the frozen disk instead of a copy. */
  linked: boolean;
  /** Coordinator-signed stream tokens, one per data-plane call of this clone (see security/stream-token.ts). */
  tokens: CloneStreamTokens;
}

/** A hot clone (seed 004), as the coordinator hands it to the source agent. */
export interface HotCloneStartArgs {
  jobId: string;
  vmId: string;
  targetHost: string;
  targetAddr: string;
  targetVmId: string;
  /** The target shares this host's datastore: the clone overlays the frozen disks; false: they are copied in full. */
  linked: boolean;
  /** Hash the frozen image and the clone's memory and compare them (the copy is also checked frame by frame). */
  verify: boolean;
  /** Bound on the source's write buffer while its memory is frozen. */
  bufferBytes: number;
  /** Cap on the memory copy's raw bytes per second (0: none), as a pre-copy clone's. */
  maxBandwidthBytesPerS: number;
  tokens: CloneStreamTokens;
}

/** One level of a hot clone's freeze (slowest first), as reported. */
export interface FreezeLevelInfo {
  level: string;
  what: string;
  /** Milliseconds after the first level froze. */
  offsetMs: number;
}

/** What a hot clone measured. */
export interface HotCloneStats {
  /** SHA-256 of the source's frozen memory image, and of the clone's memory before it first ran ('' without verify). */
  frozenHash: string;
  cloneHash: string;
  levels: FreezeLevelInfo[];
  /** Source memory writes buffered while frozen, and merged back afterwards (equal). */
  bufferedWrites: number;
  mergedWrites: number;
  /** Total time the source's guest could not write (freeze step, merge steps, a full buffer), and the longest stretch. */
  sourceStallMs: number;
  maxStallMs: number;
  /** Times the buffer was full (each one a stall until the merge). */
  bufferFullWaits: number;
  /** The source entered the suspended run state during the clone (never, for a hot clone). */
  sourceSuspended: boolean;
  /** From the RAM freeze to the end of the merge, and the merge alone. */
  frozenMs: number;
  mergeMs: number;
  memoryBytesRaw: number;
  memoryBytesWire: number;
  memoryCopyMs: number;
  /** The clone overlays the frozen disks on the shared datastore (false: copied in full). */
  diskLinked: boolean;
  diskBlocks: number;
  diskBytesRaw: number;
  diskBytesWire: number;
  diskCopyMs: number;
  /** Data in the frozen layers the source and the clone now share. */
  sharedBaseBytes: number;
  totalMs: number;
}

export interface CloneStreamTokens {
  pages: string;
  disk: string;
  verify: string;
}

/** A backup's base, for an incremental: the catalog's latest backup of the VM. */
export interface BackupBase {
  backupId: string;
  repository: string;
  /** A bypass-mode base: its t1 snapshot on the storage array, which the next incremental diffs against. */
  arraySnapshot?: string;
}

export interface BackupStartArgs {
  jobId: string;
  backupId: string;
  vmId: string;
  mode: BackupMode;
  /** Clone mode: the live clone to make first (its target is the clone host). */
  clone: CloneStartArgs | null;
  /** Clone mode: the clone's host shares this host's datastore, so the clone overlays the frozen disk instead of a copy. */
  linked: boolean;
  /** Asked for an incremental and a base exists; null means a full backup. */
  base: BackupBase | null;
  /** Why the backup is full when an incremental was asked for and no base exists ('' otherwise). */
  fullReason: string;
  repository: string;
  keepClone: boolean;
  /** Clone mode: how long the clone runs before its snapshot. */
  cloneSettleMs: number;
  /**
   * Bypass mode, tests only (needs an agent started with --allow-fault-injection): leave the image backup at t2,
   * skipping the revert to t1, to show what the revert is for.
   */
  skipRevert?: boolean;
  /** Bypass mode: the VM's newest backup's t1 snapshot on the array, deleted once this backup commits. */
  previousArraySnapshot?: string;
  /**
   * The VM's cluster (seed 003): its configuration and its datastores' state, as the coordinator knows them. The
   * agent reads the VM's configuration through the driver's export interface and stores both in the save set.
   */
  cluster?: { config: ClusterConfig; datastores: DatastoreState[] };
}

/** Source agent -> clone host: back the finished clone up (clone mode, after its disks arrived). */
export interface CloneBackupArgs {
  jobId: string;
  backupId: string;
  cloneVmId: string;
  base: BackupBase | null;
  fullReason: string;
  repository: string;
  keepClone: boolean;
  settleMs: number;
  /** Opaque to the clone host: goes into the manifest's metadata. */
  metadataJson: string;
}

export interface UploadResult {
  disks: BackupDisk[];
  kind: BackupKind;
  baseId: string;
  fullReason: string;
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  chunksZero: number;
  chunksTotal: number;
  uploadMs: number;
  /**
   * Clone mode: per disk, the blocks the clone itself wrote before its snapshot, as flat [first, count, ...]
   * runs, or null when too many to send (the source then drops its tracking: the next backup is full).
   */
  cloneWrites?: (number[] | null)[];
  /** The digest of the save set committed with the backup ('' without one). */
  saveSetDigest?: string;
}

export interface RestoreStartArgs {
  jobId: string;
  backup: BackupRecord;
  name: string;
  start: boolean;
  /** The restored VM's own identity (the backup's spec keeps the source's). */
  identity: VmIdentity;
  /**
   * A restore planned from the backup's save set (seed 003): the agent copies the save set to its datastore, checks
   * it, and imports the VM with the plan's changes. Absent for a backup made before save sets.
   */
  plan?: RestorePlan;
}

// ---- snapshot pairs (seed 002) ----

/** A storage snapshot as the host keeps it (on its own storage): frozen copy-on-write layers of every disk. */
export interface HostStorageSnapshot {
  /** `st-<timestamp>-<suffix>`: the timestamp is the pair's. */
  id: string;
  vm: string;
  /** The snapshot's timestamp, ISO 8601 with milliseconds. */
  timestamp: string;
  /** Per disk, in spec order: its name, size and the frozen layer chain (bottom first). */
  disks: { name: string; sizeMib: number; layers: string[] }[];
  /** 'pending' until the coordinator has stored its metadata and catalog entry; a pending one is discarded after a while. */
  state: 'pending' | 'committed';
  createdAt: string;
  /** How long the freeze took (ms): no data is copied, so it does not grow with the disk. */
  createMs: number;
}

/** A VM's execution state: its run state, and its vCPU and device state as the driver serialises them (JSON text). */
export interface ExecutionState {
  runState: VmRunState;
  vcpu: string;
  devices: string;
}

/** What the VM used on its host at the moment of the snapshot. */
export interface ResourceUsage {
  /** vCPU thread busy time over the sample window, % of one CPU. */
  cpuPercent: number;
  memoryMib: number;
  /** Guest memory pages written per second. */
  dirtyPagesPerS: number;
  diskReadBytesPerS: number;
  diskWriteBytesPerS: number;
  netRxBytesPerS: number;
  netTxBytesPerS: number;
  /** The sample window (ms). */
  windowMs: number;
}

/** Taken by the agent at the storage snapshot's frozen moment, stored by the coordinator in KV (never on the host). */
export interface CapturedState {
  config: VmSpec;
  execution: ExecutionState;
  resources: ResourceUsage;
}

export interface SnapshotCreateArgs {
  vmId: string;
  storageId: string;
  timestamp: string;
  /** Also capture configuration, execution state and resource usage (a pair); false for a storage-only update. */
  capture: boolean;
}

export interface SnapshotCreateResult {
  storage: HostStorageSnapshot;
  captured: CapturedState | null;
  /** How long the guest was paused for the frozen moment (ms). */
  pauseMs: number;
}

export interface SnapshotRevertArgs {
  vmId: string;
  storageId: string;
  /** The linked metadata snapshot's configuration and execution state. */
  config: VmSpec;
  execution: ExecutionState;
}

export interface SnapshotRevertResult {
  /** The VM's disks right after the revert (content hashes, as backups use). */
  diskHashes: string[];
  /** The storage snapshot's disks, read from its frozen layers. */
  snapshotHashes: string[];
  runState: VmRunState;
  ms: number;
}

/** The coordinator's catalog entry of a storage snapshot: where it is and which metadata snapshot it belongs to. */
export interface StorageSnapshotRecord {
  id: string;
  vm: string;
  vmName: string;
  host: string;
  timestamp: string;
  metadataId: string;
  /** 'pair': made with its metadata snapshot (same timestamp); 'update': a later storage-only snapshot. */
  kind: 'pair' | 'update';
  disks: { name: string; sizeMib: number; layers: number }[];
  createdAt: string;
  createMs: number;
}

/** The metadata snapshot, in the KV bucket `doppel-snapshot-meta`. */
export interface MetadataSnapshotRecord {
  /** `md-<timestamp>-<suffix>`: the same timestamp as its pair's storage snapshot. */
  id: string;
  vm: string;
  vmName: string;
  host: string;
  timestamp: string;
  config: VmSpec;
  execution: ExecutionState;
  resources: ResourceUsage;
  createdAt: string;
}

export interface AgentCommands {
  'vm.create': { args: VmSpec; result: VmInfo };
  'vm.list': { args: Record<string, never>; result: VmInfo[] };
  'vm.run': { args: { vmId: string }; result: VmInfo };
  'vm.destroy': { args: { vmId: string }; result: { destroyed: boolean } };
  'vm.dirty-rate': { args: { vmId: string; windowMs: number }; result: { pagesPerSecond: number; pageCount: number } };
  'clone.prepare': { args: ClonePrepareArgs; result: VmInfo };
  'clone.start': { args: CloneStartArgs; result: { accepted: true } };
  'hotclone.start': { args: HotCloneStartArgs; result: { accepted: true } };
  /** Cancels a running job on its source host: the source VM keeps running. */
  'job.cancel': { args: { jobId: string }; result: { cancelled: boolean } };
  /** The layers a VM's disks hold on the datastore: its own and the shared bases. */
  'vm.storage': { args: { vmId: string }; result: VmStorage };
  'vm.adopt': { args: { qmpSocket: string; name: string }; result: VmInfo };
  'link.probe': { args: { targetHost: string; targetAddr: string; bytes: number; maxBandwidthBytesPerS: number; tokens: string[] }; result: { bytesPerSecond: number } };
  'backup.start': { args: BackupStartArgs; result: { accepted: true } };
  'clone.backup': { args: CloneBackupArgs; result: UploadResult };
  'vm.restore': { args: RestoreStartArgs; result: { accepted: true; vm: VmInfo } };
  'snapshot.create': { args: SnapshotCreateArgs; result: SnapshotCreateResult };
  'snapshot.commit': { args: { storageId: string }; result: { committed: true } };
  'snapshot.delete': { args: { storageId: string }; result: { deleted: boolean } };
  'snapshot.list': { args: Record<string, never>; result: HostStorageSnapshot[] };
  'snapshot.hash': { args: { storageId: string }; result: { diskHashes: string[] } };
  'snapshot.revert': { args: SnapshotRevertArgs; result: SnapshotRevertResult };
}

export type AgentOp = keyof AgentCommands;

export interface CommandRequest<Op extends AgentOp = AgentOp> {
  op: Op;
  args: AgentCommands[Op]['args'];
}

export type CommandReply<T> = { ok: true; result: T } | { ok: false; error: ErrorJson };

// ---- jobs and events ----

export type JobState = 'pending' | 'running' | 'completed' | 'failed';

export interface ClonePlan {
  sourceHost: string;
  targetHost: string;
  sourceVm: string;
  targetVm: string;
  bandwidthBytesPerS: number;
  dirtyPagesPerS: number;
  thresholdPages: number;
  maxDowntimeMs: number;
  maxRounds: number;
  predictedConverges: boolean;
  predictedRounds: number;
  predictedDowntimeMs: number;
  warning: string;
  sourceAgentStartedAt: string;
}

export interface CloneStats {
  rounds: number;
  pagesPerRound: number[];
  bytesRaw: number;
  bytesWire: number;
  downtimeMs: number;
  totalMs: number;
  sourceHash: string;
  cloneHash: string;
  verifyMs: number;
  converged: boolean;
  stopReason: string;
  finalPages: number;
  round0BytesPerS: number;
  /** The clone's disks: blocks copied (0 when linked), their raw and wire bytes, and how long it took. */
  diskBlocks: number;
  diskBytesRaw: number;
  diskBytesWire: number;
  diskCopyMs: number;
  /** The clone overlays the source's frozen disk on a shared datastore instead of a copy. */
  diskLinked: boolean;
}

/** `bypass`: a VM with bypass volumes, backed up time-consistently on its own host (seed 001). */
export type BackupMode = 'clone' | 'direct' | 'bypass';

/** How a bypass-mode backup (seed 001) was made: both parts agree on t1. */
export interface BypassBackupInfo {
  /** The first snapshot: the array's snapshot of the bypass volumes and the host's of the image disks, one fenced moment. */
  t1: string;
  /** The second snapshot, of the image disks only, that the image backup was made from. */
  t2: string;
  /** The array and its snapshot at t1, kept as the base of the next incremental. */
  array: string;
  arraySnapshot: string;
  /** Each bypass volume: its name in the VM, on the array, and as a disk of this backup. */
  volumes: { name: string; volume: string; disk: string }[];
  /** Image blocks written between t1 and t2, taken back to their t1 content in the backup. */
  blocksReverted: number;
  /** False only when the revert was skipped (a test): the image part is then at t2, not t1. */
  reverted: boolean;
  /** How long the guest was paused for the t1 fence, and how long the revert took. */
  fenceMs: number;
  revertMs: number;
}
export type BackupKind = 'full' | 'incremental';

export interface BackupDisk {
  name: string;
  sizeBytes: number;
  chunkSize: number;
  chunks: number;
  zeroChunks: number;
  /** SHA-256 over the chunk digests: equal hashes mean equal disks (docs/decisions.md). */
  contentHash: string;
}

export interface BackupStats {
  sourcePausedMs: number;
  bytesRead: number;
  bytesStored: number;
  chunksNew: number;
  chunksReused: number;
  chunksZero: number;
  chunksTotal: number;
  diskCopyMs: number;
  diskCopyBytes: number;
  linkedClone: boolean;
  uploadMs: number;
  totalMs: number;
  clone: CloneStats | null;
}

/** A catalog entry: one committed backup (its manifest exists in the repository). */
export interface BackupRecord {
  id: string;
  vm: string;
  vmName: string;
  host: string;
  createdAt: string;
  mode: BackupMode;
  kind: BackupKind;
  baseId: string;
  fullReason: string;
  repository: string;
  disks: BackupDisk[];
  stats: BackupStats;
  spec: VmSpec;
  /** Bypass mode: the two snapshots and the revert that make it one time-consistent backup. */
  bypass?: BypassBackupInfo | null;
  /** The VM's cluster at the backup, and the digest of the save set its manifest holds (seed 003). */
  cluster?: string;
  saveSetDigest?: string;
}

export interface BackupJobInfo {
  backupId: string;
  mode: BackupMode;
  incremental: boolean;
  baseBackupId: string;
  keepClone: boolean;
  repository: string;
  result: BackupRecord | null;
}

export interface RestoreJobInfo {
  backupId: string;
  targetHost: string;
  vmName: string;
  vmId: string;
  diskHashes: string[];
  hashesMatch: boolean;
  bytesWritten: number;
  ms: number;
  /**
   * A bypass-mode backup's consistency check, read from the restored VM before it runs: the token (sequence
   * number) on its first disk and on its first bypass volume. Equal when the backup is time-consistent.
   */
  tokens?: { image: number; bypass: number } | null;
  /** The restored VM's cluster, first NIC's network ('' without NICs), datastore directory and CPU model. */
  cluster?: string;
  network?: string;
  datastorePath?: string;
  cpuModel?: string;
  /** The plan the restore applied (seed 003), when it was planned from a save set. */
  plan?: RestorePlan | null;
}

export type JobKind = 'clone' | 'hot-clone' | 'backup' | 'restore';

/** Where a VM's disk data lives on its datastore. */
export interface VmStorage {
  /** Bytes in layers only this VM uses (its overlays). */
  ownBytes: number;
  /** Bytes in shared bases it reads (frozen layers another VM or a snapshot also holds). */
  sharedBytes: number;
  layers: { disk: number; id: string; bytes: number; shared: boolean }[];
}

export interface JobRecord {
  id: string;
  kind: JobKind;
  state: JobState;
  vm: string;
  createdAt: string;
  updatedAt: string;
  plan: ClonePlan;
  stats: CloneStats | null;
  /** A hot clone's figures. */
  hot: HotCloneStats | null;
  error: string;
  errorName: string;
  currentRound: number;
  lastRoundPages: number;
  backup: BackupJobInfo | null;
  restore: RestoreJobInfo | null;
  /** What the job does now (pre-copy, disk-copy, upload...) and how far, 0..1 when known. */
  phase: string;
  progress: number;
}

interface EventBase {
  time: string;
  host: string;
  jobId: string;
  vm: string;
}

export type DoppelEvent =
  | (EventBase & { type: 'clone.started'; plan: ClonePlan })
  | (EventBase & { type: 'clone.round'; round: number; pages: number; bytesRaw: number; bytesWire: number; ms: number })
  | (EventBase & { type: 'clone.switchover'; finalPages: number; downtimeMs: number })
  | (EventBase & { type: 'clone.disk-copied'; blocks: number; bytesRaw: number; bytesWire: number; ms: number; linked: boolean })
  | (EventBase & { type: 'clone.completed'; stats: CloneStats })
  | (EventBase & { type: 'clone.frozen'; levels: FreezeLevelInfo[] })
  | (EventBase & { type: 'clone.memory-copied'; pages: number; bytesRaw: number; bytesWire: number; ms: number })
  | (EventBase & { type: 'clone.hot-completed'; hot: HotCloneStats })
  | (EventBase & { type: 'clone.failed'; error: ErrorJson })
  | (EventBase & { type: 'backup.progress'; phase: string; progress: number; detail: string })
  | (EventBase & { type: 'backup.completed'; backup: BackupRecord })
  | (EventBase & { type: 'backup.failed'; error: ErrorJson })
  | (EventBase & { type: 'restore.progress'; phase: string; progress: number })
  | (EventBase & { type: 'restore.completed'; restore: RestoreJobInfo })
  | (EventBase & { type: 'restore.failed'; error: ErrorJson })
  | (EventBase & { type: 'host.up' | 'host.down' })
  | (EventBase & { type: 'snapshot.created'; storage: StorageSnapshotRecord; metadataId: string; metadataRevision: number })
  | (EventBase & { type: 'snapshot.deleted'; storageId: string; metadataId: string; metadataDeleted: boolean })
  | (EventBase & { type: 'snapshot.reverted'; storageId: string; metadataId: string; hashesMatch: boolean })
  | (EventBase & { type: 'vm.created' | 'vm.running' | 'vm.destroyed' });

export type DoppelEventType = DoppelEvent['type'];
