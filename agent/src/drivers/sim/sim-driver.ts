/**
 * The simulated hypervisor: the embedded default driver.
 *
 * On disk, under `dataDir`: `host.json` (this host's id, used in layer
 * references), `vms/<vmId>/` (vm.json, disks.json, cbt.json) and, unless
 * another directory is given, the datastore that holds the disk layers.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, newId, newIdentity } from '../../../../shared/src/mod.js';
import type { ClusterConfig, Logger, VmExportConfig, VmSpec } from '../../../../shared/src/mod.js';
import { describeAgainstCluster } from '../export-config.js';
import type { BypassStore, CreateVmOptions, DatastoreInfo, DiskView, HypervisorDriver } from '../driver.js';
import { BypassInitiator } from './bypass-initiator.js';
import { readChainRecord } from './chain-record.js';
import { Datastore } from './datastore.js';
import { ChainView } from './disk-view.js';
import { LayerFile } from './layer-io.js';
import { SimVm } from './sim-vm.js';
import { VmDisks, diskInfo, type DiskStart } from './vm-disks.js';
import { readVmRecord, writeVmRecord } from './vm-record.js';

export interface SimDriverOptions {
  /** Where this host keeps its VMs' configuration (and, by default, its datastore). */
  dataDir: string;
  /** The datastore directory; several hosts given the same one share their disks' layers. Default `<dataDir>/datastore`. */
  datastoreDir?: string;
  /** The storage array that holds VMs' bypass volumes (seed 001); without it, a VM with bypass volumes is refused. */
  array?: BypassStore;
  log?: Logger;
}

export class SimDriver implements HypervisorDriver {
  readonly name = 'sim';
  readonly datastore: DatastoreInfo;
  private readonly ds: Datastore;
  private readonly hostId: string;
  private readonly vmsDir: string;
  private readonly vms = new Map<string, SimVm>();
  private readonly array: BypassStore | undefined;
  private readonly log: Logger | undefined;

  constructor(opts: SimDriverOptions) {
    this.array = opts.array;
    this.log = opts.log;
    this.vmsDir = join(opts.dataDir, 'vms');
    mkdirSync(this.vmsDir, { recursive: true });
    this.hostId = hostIdOf(opts.dataDir);
    this.ds = new Datastore(opts.datastoreDir ?? join(opts.dataDir, 'datastore'));
    this.datastore = this.ds.info;
  }

  /** This VM's name in the references of the layers it uses. */
  private ref(vmId: string): string {
    return `${this.hostId}.${vmId}`;
  }

  /**
   * Loads the VMs a previous run left. Disks and configuration persist; memory does not, so each comes back
   * suspended with memory as at a fresh boot (a host reboot). Half-made VMs (an incoming clone or a restore that
   * never ran) are deleted, and so are layers only they, or an interrupted merge, referenced.
   */
  async load(): Promise<SimVm[]> {
    const loaded: SimVm[] = [];
    /** VMs left on disk because they could not be loaded: their layers stay. */
    const kept = new Set<string>();
    for (const id of readdirSync(this.vmsDir)) {
      if (this.vms.has(id)) continue;
      const dir = join(this.vmsDir, id);
      const rec = readVmRecord(dir);
      if (!rec || !rec.complete || rec.id !== id) {
        this.removeVmDir(id);
        continue;
      }
      try {
        const disks = VmDisks.load(this.ds, dir, this.ref(id), rec.spec.disks);
        // A VM recorded before VMs had identities gets one now, kept from here on.
        const spec = rec.spec.identity ? rec.spec : { ...rec.spec, identity: newIdentity(rec.spec.name, this.macs()) };
        const bypass = this.initiator(id, spec);
        const vm = new SimVm({ ...rec, spec, memory: 'boot', disks, vmDir: dir, complete: true, ...(bypass ? { bypass } : {}) });
        if (spec !== rec.spec) vm.saveRecord();
        this.vms.set(id, vm);
        loaded.push(vm);
      } catch {
        kept.add(id);
      }
    }
    this.collectGarbage(kept);
    return loaded;
  }

  /** Drops this host's references that no VM's chain holds (left by a crash mid-snapshot or mid-merge). */
  private collectGarbage(kept: ReadonlySet<string>): void {
    const prefix = `${this.hostId}.`;
    const uses = new Map<string, Set<string>>();
    for (const vm of this.vms.values()) uses.set(vm.id, new Set(vm.diskChains().flat()));
    for (const layer of this.ds.layerIds()) {
      for (const ref of this.ds.refs(layer)) {
        if (!ref.startsWith(prefix)) continue;
        const vmId = ref.slice(prefix.length);
        if (kept.has(vmId) || uses.get(vmId)?.has(layer)) continue;
        this.ds.dropRef(layer, ref);
      }
    }
  }

  private removeVmDir(id: string): void {
    const dir = join(this.vmsDir, id);
    try {
      for (const chain of readChainRecord(dir)) for (const layer of chain.layers) this.ds.dropRef(layer, this.ref(id));
    } catch {
      // No chain record: the disks were never made, or collectGarbage finds the references.
    }
    rmSync(dir, { recursive: true, force: true });
  }

  /** The MACs of this host's VMs. */
  private macs(): Set<string> {
    const macs = new Set<string>();
    for (const vm of this.vms.values()) if (vm.spec.identity) macs.add(vm.spec.identity.mac);
    return macs;
  }

  /** The guest's initiator for its bypass volumes (`<vm id>-<name>` on the array), or undefined when it has none. */
  private initiator(id: string, spec: VmSpec): BypassInitiator | undefined {
    const vols = spec.bypass ?? [];
    if (vols.length === 0) return undefined;
    if (!this.array) {
      throw new FailedPreconditionError(`vm '${spec.name}' has bypass volumes, but this host has no storage array configured (start the agent with --array URL)`);
    }
    return new BypassInitiator(
      this.array,
      vols.map((v) => `${id}-${v.name}`),
      vols.map((v) => v.sizeMib * 2 ** 20),
      this.log,
    );
  }

  async create(given: VmSpec, opts: CreateVmOptions = {}): Promise<SimVm> {
    for (const vm of this.vms.values()) {
      if (vm.spec.name === given.name) throw new AlreadyExistsError(`a VM named '${given.name}' already exists on this host`);
    }
    // Without an identity (a caller that does not choose one), the VM gets its own, recorded with its spec.
    const spec: VmSpec = given.identity ? given : { ...given, identity: newIdentity(given.name, this.macs()) };
    const id = newId('vm');
    const bypass = this.initiator(id, spec);
    const dir = join(this.vmsDir, id);
    const target = opts.incoming === true || opts.restore === true;
    mkdirSync(dir, { recursive: true });
    const record = { id, spec, cloneOf: opts.cloneOf ?? '', networkIsolated: false, complete: false };
    let vm: SimVm;
    try {
      // Incomplete until the disks exist: a crash before then leaves a VM the next load deletes.
      writeVmRecord(dir, record);
      const start: DiskStart = opts.linkedDisks ? { kind: 'linked', chains: opts.linkedDisks } : target ? { kind: 'blank' } : { kind: 'image' };
      // Bypass volumes are made on the array first (blank: the guest, or a restore, fills them).
      if (bypass) for (const [i, v] of (spec.bypass ?? []).entries()) await this.array!.createVolume(bypass.volumes[i]!, v.sizeMib);
      const disks = VmDisks.create(this.ds, dir, this.ref(id), spec.disks, start);
      vm = new SimVm({ ...record, memory: opts.incoming ? 'empty' : 'boot', disks, vmDir: dir, complete: !target, ...(bypass ? { bypass } : {}) });
      vm.saveRecord();
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      if (bypass) for (const v of bypass.volumes) await this.array!.deleteVolume(v).catch(() => undefined);
      throw err;
    }
    this.vms.set(id, vm);
    if (!target) await vm.run();
    return vm;
  }

  private async deleteBypassVolumes(volumes: string[]): Promise<void> {
    const array = this.array;
    if (!array || volumes.length === 0) return;
    try {
      const mine = new Set(volumes);
      for (const snap of await array.listSnapshots()) if (snap.volumes.some((v) => mine.has(v.name))) await array.deleteSnapshot(snap.id);
      for (const v of volumes) await array.deleteVolume(v);
    } catch (err) {
      this.log?.warn({ err, volumes }, 'bypass volumes not deleted from the array');
    }
  }

  get(id: string): SimVm | undefined {
    return this.vms.get(id);
  }

  list(): SimVm[] {
    return [...this.vms.values()];
  }

  async destroy(id: string): Promise<boolean> {
    const vm = this.vms.get(id);
    if (!vm) return false;
    this.vms.delete(id);
    const layers = new Set(vm.diskChains().flat());
    try {
      await vm.destroy();
    } finally {
      rmSync(join(this.vmsDir, id), { recursive: true, force: true });
      // Its bypass volumes go with it, after the array snapshots that cover them (its backups' incremental bases;
      // best effort: an unreachable array keeps them, named after the VM).
      await this.deleteBypassVolumes(vm.bypassVolumes().map((v) => v.volume));
    }
    // A VM here that shared a base with it may be its last user now: it folds the base back (in the background,
    // as after a snapshot's release). VMs on other hosts find out at their next compaction.
    for (const other of this.vms.values()) {
      if (other.diskChains().some((c) => c.some((l) => layers.has(l)))) other.reclaimDisks().catch(() => undefined);
    }
    return true;
  }

  /**
   * Drops a storage snapshot's pin. A layer no VM (on any host) and no other snapshot references goes; VMs here
   * that share the layers may now take back bases only they use, and fold (in the background, when running; a
   * suspended one at its next snapshot or settleDisks). VMs on other hosts find out at their next compaction.
   */
  async unpinLayers(ref: string, chains: string[][]): Promise<void> {
    const layers = new Set(chains.flat());
    for (const id of layers) this.ds.dropRef(id, ref);
    for (const vm of this.vms.values()) {
      if (vm.diskChains().some((c) => c.some((l) => layers.has(l)))) vm.reclaimDisks().catch(() => undefined);
    }
  }

  async dropPins(prefix: string): Promise<number> {
    let dropped = 0;
    const touched: string[] = [];
    for (const layer of this.ds.layerIds()) {
      for (const ref of this.ds.refs(layer)) {
        if (!ref.startsWith(prefix)) continue;
        this.ds.dropRef(layer, ref);
        touched.push(layer);
        dropped++;
      }
    }
    if (dropped > 0) await this.unpinLayers(`${prefix}(none)`, [touched]);
    return dropped;
  }

  datastoreSpace(): { usedMib: number; freeMib: number } {
    return this.ds.space();
  }

  /**
   * The sim hypervisor's export descriptor: the VM's record, and where its disks are: each is a chain of layers in
   * the datastore's `layers` directory. Nothing is copied or paused.
   */
  describeExport(vmId: string, cluster: ClusterConfig): VmExportConfig {
    const vm = this.vms.get(vmId);
    if (!vm) throw new NotFoundError(`vm '${vmId}' not found on this host`);
    const layers = join(this.ds.path, 'layers');
    return describeAgainstCluster(
      { id: vm.id, spec: vm.spec, datastorePath: this.ds.path, disks: vm.spec.disks.map(() => ({ format: 'sim-layers', path: layers })) },
      cluster,
    );
  }

  openChainViews(disks: { name: string; sizeMib: number; layers: string[] }[]): { views: DiskView[]; close(): void } {
    const opened: LayerFile[] = [];
    let closed = false;
    try {
      const views = disks.map((d) => {
        if (!Number.isInteger(d.sizeMib) || d.sizeMib <= 0) throw new InvalidArgumentError(`disk '${d.name}' has a bad size (${d.sizeMib} MiB)`);
        if (d.layers.length === 0) throw new InvalidArgumentError(`disk '${d.name}' has no layers`);
        const info = diskInfo(d);
        const layers = d.layers.map((id) => {
          const l = new LayerFile(this.ds.openLayer(id, info.blockCount, info.blockSize), info.blockSize);
          opened.push(l);
          return l;
        });
        return new ChainView(info, layers, () => !closed);
      });
      return {
        views,
        close: () => {
          if (closed) return;
          closed = true;
          for (const l of opened) l.close();
        },
      };
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
  }

  /** For tests: a host crash. Every guest dies at once and nothing is written; a new driver on the same directories loads what is left. */
  async crash(): Promise<void> {
    const vms = [...this.vms.values()];
    this.vms.clear();
    await Promise.all(vms.map((vm) => vm.crash()));
  }

  /** A clean stop: every VM stops and is kept, with its change tracking written as clean. */
  async close(): Promise<void> {
    const vms = [...this.vms.values()];
    this.vms.clear();
    await Promise.all(vms.map((vm) => vm.close()));
  }
}

/** A random id made once per data directory. */
function hostIdOf(dataDir: string): string {
  const file = join(dataDir, 'host.json');
  if (existsSync(file)) {
    const id = (JSON.parse(readFileSync(file, 'utf8')) as { id?: unknown }).id;
    if (typeof id === 'string' && /^[A-Za-z0-9-]+$/.test(id)) return id;
  }
  const id = newId('host');
  writeFileSync(file, JSON.stringify({ id }));
  return id;
}
