/**
 * Snapshot pairs (seed 002). A pair is a storage snapshot, kept by the agent on
 * the VM's host (frozen copy-on-write layers of every disk), and a metadata
 * snapshot, kept here in the KV bucket `doppel-snapshot-meta` and never on the
 * host: the VM's configuration, execution state and the host's resource usage
 * for it at the frozen moment. Their ids carry the same timestamp; the catalog
 * (`doppel-snapshots`) links each storage snapshot to its metadata snapshot.
 * Later storage snapshots (`--storage-only`) link to the existing metadata
 * snapshot and leave it untouched.
 *
 * Nothing is left half-linked: the agent's snapshot stays pending until the
 * metadata and the catalog entry are stored, and is deleted (or, if NATS is
 * gone, expires on the agent) when they cannot be.
 */
import { randomBytes } from 'node:crypto';
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  BUCKETS,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  encodeJson,
  listKeys,
  publishEvent,
  sendCommand,
  toDoppelError,
  type HostRecord,
  type HostStorageSnapshot,
  type KV,
  type Logger,
  type MetadataSnapshotRecord,
  type NatsConnection,
  type SnapshotRevertResult,
  type StorageSnapshotRecord,
  type VmInfo,
} from '../../shared/src/mod.js';
import type { HostRegistry } from './registry.js';

export interface SnapshotDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  registry: HostRegistry;
  /** Metadata snapshots (the network store). */
  meta: KV;
  /** The catalog: storage snapshot id -> its record and link. */
  catalog: KV;
  locate: (vm: string) => Promise<{ vm: VmInfo; host: HostRecord }>;
  log: Logger;
}

export interface Metadata {
  record: MetadataSnapshotRecord;
  /** Its KV revision: a storage-only update leaves it where it was. */
  revision: number;
  /** Where it lives. */
  store: string;
}

export interface PairResult {
  storage: StorageSnapshotRecord;
  metadata: Metadata;
  pauseMs: number;
}

export interface RevertResult extends SnapshotRevertResult {
  storage: StorageSnapshotRecord;
  metadata: Metadata;
  hashesMatch: boolean;
}

export interface CheckReport {
  storageWithoutMetadata: string[];
  metadataWithoutStorage: string[];
  hostsChecked: string[];
  hostsUnreachable: string[];
}

/** 2026-11-22T08:25:30.123Z -> 20261122T082530123Z: the timestamp both ids of a pair carry. */
export function idStamp(iso: string): string {
  return iso.replace(/[-:.]/g, '');
}

const ID_RE = /^(st|md)-\d{8}T\d{9}Z-[0-9a-f]{4}$/;

export function parseSnapshotId(id: string): 'st' | 'md' {
  if (!ID_RE.test(id)) throw new InvalidArgumentError(`'${id}' is not a snapshot id (st-YYYYMMDDTHHMMSSmmmZ-xxxx or md-...)`);
  return id.startsWith('st-') ? 'st' : 'md';
}

export class SnapshotService {
  constructor(private readonly d: SnapshotDeps) {}

  private storeOf(id: string): string {
    return `nats-kv://${BUCKETS.snapshotMeta}/${id}`;
  }

  async metadata(id: string): Promise<Metadata | undefined> {
    const e = await this.d.meta.get(id);
    if (!e || e.operation !== 'PUT') return undefined;
    return { record: e.json<MetadataSnapshotRecord>(), revision: e.revision, store: this.storeOf(id) };
  }

  private async allMetadata(): Promise<Metadata[]> {
    const ids = await listKeys(this.d.nc, BUCKETS.snapshotMeta);
    return (await Promise.all(ids.map((id) => this.metadata(id)))).filter((m): m is Metadata => m !== undefined);
  }

  private async storageRecord(id: string): Promise<StorageSnapshotRecord | undefined> {
    const e = await this.d.catalog.get(id);
    return e && e.operation === 'PUT' ? e.json<StorageSnapshotRecord>() : undefined;
  }

  private async allStorage(): Promise<StorageSnapshotRecord[]> {
    const ids = await listKeys(this.d.nc, BUCKETS.snapshots);
    return (await Promise.all(ids.map((id) => this.storageRecord(id)))).filter((r): r is StorageSnapshotRecord => r !== undefined);
  }

  /** Creates a pair, or with `storageOnly` a storage snapshot linked to the VM's newest metadata snapshot. */
  async create(vmRef: string, storageOnly: boolean): Promise<PairResult> {
    const { vm, host } = await this.d.locate(vmRef);
    let base: Metadata | undefined;
    if (storageOnly) {
      base = (await this.allMetadata()).filter((m) => m.record.vm === vm.id).sort((a, b) => b.record.timestamp.localeCompare(a.record.timestamp))[0];
      if (!base) throw new FailedPreconditionError(`vm '${vm.name}' has no metadata snapshot to link to: take a pair first (doppel snapshot ${vm.name})`);
    }
    const timestamp = new Date().toISOString();
    const stamp = `${idStamp(timestamp)}-${randomBytes(2).toString('hex')}`;
    const storageId = `st-${stamp}`;
    const log = this.d.log.child({ vm: vm.id, storageId });
    const made = await sendCommand(this.d.nc, host.name, 'snapshot.create', { vmId: vm.id, storageId, timestamp, capture: !storageOnly }, 60_000);
    let metaWritten = '';
    let catalogWritten = false;
    try {
      let metadata: Metadata;
      if (base) metadata = base;
      else {
        if (!made.captured) throw new FailedPreconditionError(`host '${host.name}' made the storage snapshot without its metadata`);
        const record: MetadataSnapshotRecord = {
          id: `md-${stamp}`,
          vm: vm.id,
          vmName: vm.name,
          host: host.name,
          timestamp,
          ...made.captured,
          createdAt: new Date().toISOString(),
        };
        const revision = await this.d.meta.create(record.id, encodeJson(record));
        metaWritten = record.id;
        metadata = { record, revision, store: this.storeOf(record.id) };
      }
      const storage = this.catalogRecord(made.storage, vm, host, metadata.record.id, base ? 'update' : 'pair');
      await this.d.catalog.create(storage.id, encodeJson(storage));
      catalogWritten = true;
      await sendCommand(this.d.nc, host.name, 'snapshot.commit', { storageId });
      await publishEvent(
        this.d.js,
        { type: 'snapshot.created', host: host.name, jobId: '', vm: vm.id, storage, metadataId: metadata.record.id, metadataRevision: metadata.revision },
        'coordinator',
      ).catch((err: unknown) => log.warn({ err }, 'could not publish snapshot.created'));
      log.info({ metadataId: metadata.record.id, kind: storage.kind, createMs: storage.createMs }, 'snapshot created');
      return { storage, metadata, pauseMs: made.pauseMs };
    } catch (err) {
      // Undo what was linked; the agent's pending snapshot goes now, or expires on its own if NATS is gone.
      if (catalogWritten) await this.d.catalog.delete(storageId).catch(() => undefined);
      if (metaWritten) await this.d.meta.delete(metaWritten).catch(() => undefined);
      await sendCommand(this.d.nc, host.name, 'snapshot.delete', { storageId }, 5_000).catch(() => undefined);
      const e = toDoppelError(err);
      log.warn({ err: e }, 'snapshot abandoned: nothing is linked');
      throw new UnavailableError(`snapshot of vm '${vm.name}' failed and was rolled back (the metadata store or host '${host.name}' failed): ${e.message}`, { cause: err });
    }
  }

  private catalogRecord(s: HostStorageSnapshot, vm: VmInfo, host: HostRecord, metadataId: string, kind: 'pair' | 'update'): StorageSnapshotRecord {
    return {
      id: s.id,
      vm: vm.id,
      vmName: vm.name,
      host: host.name,
      timestamp: s.timestamp,
      metadataId,
      kind,
      disks: s.disks.map((d) => ({ name: d.name, sizeMib: d.sizeMib, layers: d.layers.length })),
      createdAt: s.createdAt,
      createMs: s.createMs,
    };
  }

  /** One VM's (id or name) snapshots, or all, oldest first. */
  async list(vm = ''): Promise<{ metadata: Metadata[]; storage: StorageSnapshotRecord[] }> {
    const match = (r: { vm: string; vmName: string }) => !vm || r.vm === vm || r.vmName === vm;
    const [metadata, storage] = await Promise.all([this.allMetadata(), this.allStorage()]);
    return {
      metadata: metadata.filter((m) => match(m.record)).sort((a, b) => a.record.timestamp.localeCompare(b.record.timestamp)),
      storage: storage.filter(match).sort((a, b) => a.timestamp.localeCompare(b.timestamp)),
    };
  }

  /** A snapshot by id with what it is linked to. */
  async get(id: string): Promise<{ metadata: Metadata[]; storage: StorageSnapshotRecord[] }> {
    if (parseSnapshotId(id) === 'st') {
      const s = await this.storageRecord(id);
      if (!s) throw new NotFoundError(`storage snapshot '${id}' not found in the catalog`);
      const m = await this.metadata(s.metadataId);
      return { metadata: m ? [m] : [], storage: [s] };
    }
    const m = await this.metadata(id);
    if (!m) throw new NotFoundError(`metadata snapshot '${id}' not found`);
    const storage = (await this.allStorage()).filter((s) => s.metadataId === id).sort((a, b) => a.timestamp.localeCompare(b.timestamp));
    return { metadata: [m], storage };
  }

  private async linked(id: string): Promise<{ storage: StorageSnapshotRecord; metadata: Metadata | undefined }> {
    if (parseSnapshotId(id) !== 'st') throw new InvalidArgumentError(`'${id}' is a metadata snapshot: give a storage snapshot id (st-...)`);
    const storage = await this.storageRecord(id);
    if (!storage) throw new NotFoundError(`storage snapshot '${id}' not found in the catalog`);
    return { storage, metadata: await this.metadata(storage.metadataId) };
  }

  /** Disks back to the storage snapshot; configuration and execution state back to its metadata snapshot. */
  async revert(id: string): Promise<RevertResult> {
    const { storage, metadata } = await this.linked(id);
    if (!metadata) throw new FailedPreconditionError(`storage snapshot '${id}' has lost its metadata snapshot '${storage.metadataId}' (see doppel snapshot check)`);
    const { vm, host } = await this.d.locate(storage.vm);
    if (host.name !== storage.host) {
      throw new FailedPreconditionError(`vm '${vm.name}' is now on host '${host.name}', but snapshot '${id}' is on host '${storage.host}'`);
    }
    const r = await sendCommand(
      this.d.nc,
      host.name,
      'snapshot.revert',
      { vmId: vm.id, storageId: id, config: metadata.record.config, execution: metadata.record.execution },
      120_000,
    );
    const hashesMatch = r.diskHashes.length === r.snapshotHashes.length && r.diskHashes.every((h, i) => h === r.snapshotHashes[i]);
    await publishEvent(this.d.js, { type: 'snapshot.reverted', host: host.name, jobId: '', vm: vm.id, storageId: id, metadataId: metadata.record.id, hashesMatch }, 'coordinator').catch(
      (err: unknown) => this.d.log.warn({ err }, 'could not publish snapshot.reverted'),
    );
    return { ...r, storage, metadata, hashesMatch };
  }

  /** Deletes a storage snapshot (the host keeps the rest of the chain readable); its metadata goes with its last storage snapshot. */
  async delete(id: string): Promise<{ deleted: boolean; metadataDeleted: boolean }> {
    const { storage } = await this.linked(id);
    const host = await this.d.registry.get(storage.host);
    if (!host || host.state !== 'up') throw new UnavailableError(`host '${storage.host}', which keeps snapshot '${id}', is down: nothing was deleted`);
    await sendCommand(this.d.nc, host.name, 'snapshot.delete', { storageId: id }, 60_000);
    await this.d.catalog.delete(id);
    const others = (await this.allStorage()).filter((s) => s.metadataId === storage.metadataId && s.id !== id);
    let metadataDeleted = false;
    if (others.length === 0 && (await this.metadata(storage.metadataId))) {
      await this.d.meta.delete(storage.metadataId);
      metadataDeleted = true;
    }
    await publishEvent(
      this.d.js,
      { type: 'snapshot.deleted', host: host.name, jobId: '', vm: storage.vm, storageId: id, metadataId: storage.metadataId, metadataDeleted },
      'coordinator',
    ).catch((err: unknown) => this.d.log.warn({ err }, 'could not publish snapshot.deleted'));
    return { deleted: true, metadataDeleted };
  }

  /** Storage snapshots on hosts with no catalog link or no metadata; metadata no existing storage snapshot links to. */
  async check(): Promise<CheckReport> {
    const hosts = await this.d.registry.list();
    const onHost = new Map<string, Set<string>>();
    const unreachable: string[] = [];
    await Promise.all(
      hosts.map(async (h) => {
        if (h.state !== 'up') return void unreachable.push(h.name);
        try {
          const list = await sendCommand(this.d.nc, h.name, 'snapshot.list', {}, 10_000);
          onHost.set(h.name, new Set(list.filter((s) => s.state === 'committed').map((s) => s.id)));
        } catch {
          unreachable.push(h.name);
        }
      }),
    );
    const [metadata, storage] = await Promise.all([this.allMetadata(), this.allStorage()]);
    const metaIds = new Set(metadata.map((m) => m.record.id));
    const catalog = new Map(storage.map((s) => [s.id, s]));
    const storageWithoutMetadata: string[] = [];
    for (const [, ids] of onHost) {
      for (const id of ids) {
        const link = catalog.get(id);
        if (!link || !metaIds.has(link.metadataId)) storageWithoutMetadata.push(id);
      }
    }
    const metadataWithoutStorage = metadata
      .filter((m) => {
        const links = storage.filter((s) => s.metadataId === m.record.id);
        // Only what can be known: a link on an unreachable host may still exist.
        return links.every((s) => onHost.has(s.host) && !onHost.get(s.host)!.has(s.id));
      })
      .map((m) => m.record.id);
    return {
      storageWithoutMetadata: storageWithoutMetadata.sort(),
      metadataWithoutStorage: metadataWithoutStorage.sort(),
      hostsChecked: [...onHost.keys()].sort(),
      hostsUnreachable: unreachable.sort(),
    };
  }
}
