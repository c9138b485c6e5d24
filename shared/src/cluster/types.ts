/**
 * Clusters and portable save sets (seed 003). A cluster is a group of hosts
 * with the same networks, datastores, CPU models and memory limits; every agent
 * belongs to one. A save set is a backup together with its VM's configuration
 * and its cluster's configuration, so a restore can compute how the destination
 * differs and change the configuration to fit.
 */
import type { VmIdentity } from '../identity.js';
import type { BypassVolumeSpec, VmSpec, WorkloadSpec } from '../protocol/types.js';

/** A network of a cluster: a bridge on every host, tagged with a VLAN (0 = untagged). */
export interface ClusterNetwork {
  name: string;
  bridge: string;
  vlan: number;
}

/** A datastore of a cluster: a directory the hosts that use it mount at `path`. */
export interface ClusterDatastore {
  name: string;
  /** Absolute path where the hosts mount it (an agent's `--datastore` directory). */
  path: string;
  /** A quota (MiB) the datastore's disks may use; 0: the filesystem's free space is the limit. */
  capacityMib: number;
}

/** A cluster's configuration, as registered with the coordinator (`doppel cluster add`). */
export interface ClusterConfig {
  name: string;
  /** Hosts listed when the cluster was registered; agents started with `--cluster NAME` join it too. */
  hosts: string[];
  networks: ClusterNetwork[];
  datastores: ClusterDatastore[];
  /** CPU models the cluster's hosts offer to guests; the first is the default for new VMs. */
  cpuModels: string[];
  /** The largest memory one VM may have in this cluster (MiB); 0: only the hosts' capacity limits it. */
  maxVmMemoryMib: number;
  /** ISO 8601; '' for a cluster that was never registered (derived from its agents). */
  registeredAt: string;
}

/** A datastore as the cluster sees it now: which up hosts mount it, and its free space. */
export interface DatastoreState extends ClusterDatastore {
  mountedBy: string[];
  /** MiB free for new disks: the quota minus what is used, or the filesystem's free space. 0 when no host mounts it. */
  freeMib: number;
  usedMib: number;
}

/** A host as a cluster view shows it. */
export interface ClusterHostState {
  name: string;
  state: 'up' | 'down';
  memoryMib: number;
  /** Memory not yet given to VMs (MiB). */
  freeMemoryMib: number;
  /** The agent's datastore directory. */
  datastorePath: string;
  /** The datastore's name in the cluster ('' when the cluster lists none at that path). */
  datastore: string;
}

/** A cluster's configuration and its live state: the input of a restore plan. */
export interface ClusterView {
  config: ClusterConfig;
  /** False for a cluster only its agents named: its configuration is derived (see deriveClusterConfig). */
  registered: boolean;
  hosts: ClusterHostState[];
  datastores: DatastoreState[];
}

/** A VM's NIC as exported: the cluster network it is attached to, and what that network was. */
export interface NicExport {
  name: string;
  network: string;
  bridge: string;
  vlan: number;
  mac: string;
}

/** A VM's disk as exported: where it lives. */
export interface DiskExport {
  name: string;
  sizeMib: number;
  image: string;
  /** How the driver stores it ('sim-layers': a copy-on-write layer chain; 'qcow2' on qemu). */
  format: string;
  /** The directory (sim) or file (qemu) that holds it on its datastore. */
  path: string;
}

/** A VM's configuration as the driver's export interface describes it (what an export would write). */
export interface VmExportConfig {
  id: string;
  name: string;
  memoryMib: number;
  vcpus: number;
  cpuModel: string;
  nics: NicExport[];
  datastore: { name: string; path: string };
  disks: DiskExport[];
  bypass: BypassVolumeSpec[];
  workload: WorkloadSpec;
  identity: VmIdentity;
  /** The full specification a restore recreates the VM from (after the plan's changes). */
  spec: VmSpec;
}

/** The format tag of a save set; anything else is refused as foreign. */
export const SAVE_SET_FORMAT = 'doppel.saveset/v1';

/** A save set: a backup plus the VM's and its cluster's configuration, stored in the backup's manifest. */
export interface SaveSet {
  format: typeof SAVE_SET_FORMAT;
  backupId: string;
  /** The backed-up VM's id. */
  vm: string;
  exportedAt: string;
  /** Where the configuration was read: the VM's host and its driver. */
  exportedBy: { host: string; driver: string };
  config: VmExportConfig;
  cluster: ClusterConfig;
  /** The VM's cluster's datastores as they were at the backup (free space, mounts). */
  datastores: DatastoreState[];
  /** The backup's disks: name and content hash, as the manifest records them. */
  disks: { name: string; contentHash: string }[];
  /** SHA-256 (hex) of the canonical JSON of every field above: a save set whose digest differs is corrupt. */
  digest: string;
}

/** `--map` overrides: source name -> destination name, per kind. */
export interface RestoreMaps {
  net: Record<string, string>;
  store: Record<string, string>;
  cpu: Record<string, string>;
}

export type PlanChangeKind = 'network' | 'datastore' | 'path' | 'cpu-model';

/** One configuration change a restore makes to fit the destination. */
export interface PlanChange {
  kind: PlanChangeKind;
  /** What changes: a NIC ('nic0'), the VM's datastore ('datastore'), a disk ('disk0'), or 'cpu'. */
  item: string;
  from: string;
  to: string;
  /** The rule that chose `to` (see docs/decisions.md), e.g. 'same VLAN', 'most free space', '--map'. */
  rule: string;
}

/** A restore plan: what changes, and what cannot be satisfied (a restore with problems moves no data). */
export interface RestorePlan {
  backupId: string;
  vmName: string;
  sourceCluster: string;
  destinationCluster: string;
  changes: PlanChange[];
  /** Every requirement the destination cannot meet, each a sentence; empty when the restore can go ahead. */
  problems: string[];
  /** The chosen datastore, or null when none fits. */
  datastore: { name: string; path: string } | null;
  /** Up hosts that mount the chosen datastore and can hold the VM's memory, best first. */
  hosts: string[];
  cpuModel: string;
  /** Per NIC, the destination network. */
  networks: string[];
  memoryMib: number;
  /** The disks' provisioned size (MiB), which the datastore must have free. */
  diskMib: number;
}
