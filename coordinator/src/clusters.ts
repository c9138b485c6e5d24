/**
 * Clusters (seed 003) in NATS KV, and their live views. A host belongs to the
 * cluster its agent names (`--cluster`); a registered cluster adds what the
 * agents cannot tell: its networks, datastores, CPU models and memory limit.
 * A cluster nobody registered still has a view, derived from its agents (one
 * untagged network, a datastore per directory, the generic CPU model), so every
 * backup has a cluster configuration to carry.
 */
import path from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  NotFoundError,
  deriveClusterConfig,
  encodeJson,
  listKeys,
  requireName,
  validateClusterConfig,
  BUCKETS,
  type ClusterConfig,
  type ClusterHostState,
  type ClusterView,
  type DatastoreState,
  type HostRecord,
  type KV,
  type NatsConnection,
} from '../../shared/src/mod.js';

export class ClusterStore {
  constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
    private readonly hosts: () => Promise<HostRecord[]>,
  ) {}

  /** Registers a cluster; `replace` overwrites one of the same name. */
  async add(input: Partial<ClusterConfig>, replace: boolean): Promise<ClusterView> {
    const config = validateClusterConfig(input);
    // A host belongs to the cluster its agent names: listing a host that runs in another one would only show it down.
    const elsewhere = (await this.hosts()).filter((h) => config.hosts.includes(h.name) && h.state === 'up' && (h.cluster || 'default') !== config.name);
    if (elsewhere.length > 0) {
      throw new FailedPreconditionError(
        `${elsewhere.map((h) => `host '${h.name}' runs in cluster '${h.cluster}'`).join('; ')}: start its agent with --cluster ${config.name} to make it a host of '${config.name}'`,
      );
    }
    if (replace) {
      await this.kv.put(config.name, encodeJson(config));
    } else {
      // create() fails if the key exists, so two adds of one name at once cannot both win.
      await this.kv.create(config.name, encodeJson(config)).catch(async (err: unknown) => {
        if (await this.registered(config.name)) throw new AlreadyExistsError(`cluster '${config.name}' is already registered (replace it with --replace)`);
        throw err;
      });
    }
    return this.view(config.name);
  }

  async remove(name: string): Promise<boolean> {
    requireName('cluster name', name);
    if (!(await this.registered(name))) return false;
    await this.kv.delete(name);
    return true;
  }

  private async registered(name: string): Promise<ClusterConfig | undefined> {
    const e = await this.kv.get(name);
    return e && e.operation === 'PUT' ? e.json<ClusterConfig>() : undefined;
  }

  /** A cluster's view: registered, or derived from the agents that name it; NotFoundError when neither. */
  async view(name: string, hosts?: HostRecord[]): Promise<ClusterView> {
    requireName('cluster name', name);
    const all = hosts ?? (await this.hosts());
    const config = await this.registered(name);
    const members = all.filter((h) => (h.cluster || 'default') === name);
    if (!config && members.length === 0) {
      const known = await this.names(all);
      throw new NotFoundError(`cluster '${name}' is neither registered nor named by any agent (known: ${known.join(', ') || 'none'})`);
    }
    return buildView(config ?? deriveClusterConfig(name, members.map((h) => ({ name: h.name, datastorePath: h.datastorePath, datastoreId: h.datastore }))), !!config, all);
  }

  /** The cluster of a host (its agent's `--cluster`). */
  viewOf(host: HostRecord, hosts?: HostRecord[]): Promise<ClusterView> {
    return this.view(host.cluster || 'default', hosts);
  }

  private async names(hosts: HostRecord[]): Promise<string[]> {
    const names = new Set(await listKeys(this.nc, BUCKETS.clusters));
    for (const h of hosts) names.add(h.cluster || 'default');
    return [...names].sort();
  }

  async list(): Promise<ClusterView[]> {
    const hosts = await this.hosts();
    const views = await Promise.all((await this.names(hosts)).map((n) => this.view(n, hosts).catch(() => undefined)));
    return views.filter((v): v is ClusterView => v !== undefined);
  }
}

/**
 * A cluster's state from its configuration and the fleet's heartbeats. Members are the hosts whose agent names
 * the cluster, and hosts the configuration lists that are not reporting it (shown down). A datastore is mounted by
 * the up members whose agent's datastore directory is its path; its free space is the quota minus what is used, or
 * the filesystem's, whichever is less.
 */
export function buildView(config: ClusterConfig, registered: boolean, all: readonly HostRecord[]): ClusterView {
  const members = all.filter((h) => (h.cluster || 'default') === config.name);
  const nameAt = (dir: string) => config.datastores.find((d) => path.resolve(d.path) === path.resolve(dir))?.name ?? '';
  const hosts: ClusterHostState[] = members.map((h) => ({
    name: h.name,
    state: h.state,
    memoryMib: h.capacity.memoryMib,
    freeMemoryMib: Math.max(0, h.capacity.memoryMib - h.usedMemoryMib),
    datastorePath: h.datastorePath,
    datastore: h.datastorePath ? nameAt(h.datastorePath) : '',
  }));
  for (const name of config.hosts) {
    if (!hosts.some((h) => h.name === name)) hosts.push({ name, state: 'down', memoryMib: 0, freeMemoryMib: 0, datastorePath: '', datastore: '' });
  }
  const datastores: DatastoreState[] = config.datastores.map((d) => {
    const mounting = members.filter((h) => h.state === 'up' && h.datastorePath && path.resolve(h.datastorePath) === path.resolve(d.path));
    if (mounting.length === 0) return { ...d, mountedBy: [], freeMib: 0, usedMib: 0 };
    const usedMib = Math.max(...mounting.map((h) => h.datastoreUsedMib));
    const fsFree = Math.min(...mounting.map((h) => h.datastoreFreeMib));
    const freeMib = d.capacityMib > 0 ? Math.max(0, Math.min(d.capacityMib - usedMib, fsFree)) : fsFree;
    return { ...d, mountedBy: mounting.map((h) => h.name), freeMib, usedMib };
  });
  return { config, registered, hosts: hosts.sort((a, b) => a.name.localeCompare(b.name)), datastores };
}
