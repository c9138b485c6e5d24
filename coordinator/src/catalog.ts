/**
 * The backup catalog in NATS KV: one entry per committed backup, written once
 * the repository holds its manifest (the agent reports the commit as an event,
 * and the job tracker files it here). An interrupted backup never gets an entry.
 */
import { BUCKETS, NotFoundError, encodeJson, listKeys, type BackupRecord, type KV, type NatsConnection } from '../../shared/src/mod.js';

export class Catalog {
  constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
  ) {}

  async put(b: BackupRecord): Promise<void> {
    await this.kv.put(b.id, encodeJson(b));
  }

  async get(id: string): Promise<BackupRecord> {
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT') throw new NotFoundError(`backup '${id}' not found in the catalog`);
    return e.json<BackupRecord>();
  }

  /** Newest first; `vm` matches the source VM's id or name. */
  async list(vm = '', limit = 1000): Promise<BackupRecord[]> {
    const ids = await listKeys(this.nc, BUCKETS.backups);
    const all = await Promise.all(ids.map((id) => this.get(id).catch(() => undefined)));
    return all
      .filter((b): b is BackupRecord => b !== undefined && (!vm || b.vm === vm || b.vmName === vm))
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, limit);
  }

  /** The base for a VM's next incremental: its newest backup. */
  async latest(vmId: string): Promise<BackupRecord | undefined> {
    return (await this.list(vmId, 1))[0];
  }
}
