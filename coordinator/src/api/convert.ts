/** Plain records to the API's message shapes (the same for gRPC and JSON). */
import type { BackupRecord, ClusterView, HostRecord, JobRecord, RestorePlan, StorageSnapshotRecord, VmInfo, VmSpec } from '../../../shared/src/mod.js';
import type { RestorePlan as RestorePlanMessage } from '../../../shared/src/gen/doppel/v1/RestorePlan.js';
import type { Cluster } from '../../../shared/src/gen/doppel/v1/Cluster.js';
import type { Metadata, RevertResult } from '../snapshots.js';
import type { RevertSnapshotResponse } from '../../../shared/src/gen/doppel/v1/RevertSnapshotResponse.js';
import type { StorageSnapshot } from '../../../shared/src/gen/doppel/v1/StorageSnapshot.js';
import type { MetadataSnapshot } from '../../../shared/src/gen/doppel/v1/MetadataSnapshot.js';
import type { SnapshotList } from '../../../shared/src/gen/doppel/v1/SnapshotList.js';
import type { Backup } from '../../../shared/src/gen/doppel/v1/Backup.js';
import type { Host } from '../../../shared/src/gen/doppel/v1/Host.js';
import type { VM } from '../../../shared/src/gen/doppel/v1/VM.js';
import type { Job } from '../../../shared/src/gen/doppel/v1/Job.js';
import type { Event } from '../../../shared/src/gen/doppel/v1/Event.js';
import type { StoredEvent } from '../service.js';

export function hostMessage(h: HostRecord): Host {
  return {
    name: h.name,
    dataAddr: h.dataAddr,
    driver: h.driver,
    accel: h.accel ?? '',
    state: h.state,
    capacity: h.capacity,
    usedMemoryMib: h.usedMemoryMib,
    vmCount: h.vms.length,
    lastSeen: h.sentAt,
    agentRssBytes: h.rssBytes,
    agentPeakRssBytes: h.peakRssBytes,
    datastore: h.datastore,
    cluster: h.cluster,
    datastorePath: h.datastorePath,
    datastoreFreeMib: h.datastoreFreeMib,
    datastoreUsedMib: h.datastoreUsedMib,
  };
}

export function planMessage(p: RestorePlan): RestorePlanMessage {
  return { ...p, datastore: p.datastore?.name ?? '', datastorePath: p.datastore?.path ?? '' };
}

export function clusterMessage(v: ClusterView): Cluster {
  return {
    ...v.config,
    hosts: v.hosts,
    datastores: v.datastores,
    registered: v.registered,
  };
}

type FlatIdentity = { uuid: string; mac: string; hostname: string; machineId: string };

/**
 * A VM's configuration as the API shows it: the identity's fields flat (uuid, mac, hostname, machineId; '' when it
 * has none), and its NICs as the networks they are on.
 */
function specMessage<T extends VmSpec>(s: T): Omit<T, 'identity' | 'nics'> & FlatIdentity & { networks: string[] } {
  const { identity, nics, ...rest } = s;
  return {
    ...rest,
    uuid: identity?.uuid ?? '',
    mac: identity?.mac ?? '',
    hostname: identity?.hostname ?? '',
    machineId: identity?.machineId ?? '',
    networks: (nics ?? []).map((n) => n.network),
  };
}

export function vmMessage(v: VmInfo): VM {
  return specMessage(v);
}

export function backupMessage(b: BackupRecord): Backup {
  return { ...b, spec: specMessage(b.spec), stats: { ...b.stats, clone: b.stats.clone ?? undefined }, bypass: b.bypass ?? undefined };
}

export function jobMessage(j: JobRecord): Job {
  return {
    ...j,
    stats: j.stats ?? undefined,
    hot: j.hot ?? undefined,
    backup: j.backup ? { ...j.backup, result: j.backup.result ? backupMessage(j.backup.result) : undefined } : undefined,
    restore: j.restore
      ? {
          ...j.restore,
          imageToken: j.restore.tokens?.image ?? 0,
          bypassToken: j.restore.tokens?.bypass ?? 0,
          hasTokens: !!j.restore.tokens,
          plan: j.restore.plan ? planMessage(j.restore.plan) : undefined,
        }
      : undefined,
  };
}

export function eventMessage(e: StoredEvent): Event {
  return { seq: e.seq, type: e.event.type, time: e.event.time, jobId: e.event.jobId, host: e.event.host, vm: e.event.vm, json: JSON.stringify(e.event) };
}

export function storageSnapshotMessage(s: StorageSnapshotRecord): StorageSnapshot {
  return { ...s };
}

export function metadataSnapshotMessage(m: Metadata): MetadataSnapshot {
  const r = m.record;
  return {
    id: r.id,
    vm: r.vm,
    vmName: r.vmName,
    host: r.host,
    timestamp: r.timestamp,
    config: { ...specMessage(r.config), id: r.vm, host: r.host, state: r.execution.runState, cloneOf: '', networkIsolated: false },
    runState: r.execution.runState,
    vcpuState: r.execution.vcpu,
    deviceState: r.execution.devices,
    resources: r.resources,
    createdAt: r.createdAt,
    revision: m.revision,
    store: m.store,
  };
}

export function snapshotListMessage(l: { metadata: Metadata[]; storage: StorageSnapshotRecord[] }): SnapshotList {
  return { metadata: l.metadata.map(metadataSnapshotMessage), storage: l.storage.map(storageSnapshotMessage) };
}

export function revertMessage(r: RevertResult): RevertSnapshotResponse {
  return {
    storage: storageSnapshotMessage(r.storage),
    metadata: metadataSnapshotMessage(r.metadata),
    diskHashes: r.diskHashes,
    snapshotHashes: r.snapshotHashes,
    hashesMatch: r.hashesMatch,
    runState: r.runState,
    ms: r.ms,
  };
}
