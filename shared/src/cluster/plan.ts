/**
 * The restore plan (seed 003): how a save set's VM must change to run in a destination cluster, or why it cannot.
 * Planning is pure: the same save set, cluster view and maps give the same plan. Every requirement the
 * destination cannot meet is listed at once (a restore with problems moves no data), each naming its item.
 *
 * Networks, for each NIC (on network N, VLAN V, bridge B0 in the save set's cluster):
 *  a. `--map net:N=B`: network B of the destination, even on another VLAN (the rule says so:
 *     '--map (VLAN 10 -> 30)'); a B the destination lacks is a problem.
 *  b. a network named N on VLAN V: unchanged.
 *  c. a network on VLAN V: the one on bridge B0 first, else the first by name (rule 'same VLAN'). The VLAN is
 *     what puts the guest on the same layer-2 segment; names and bridges are local choices.
 *  d. none: a problem listing the destination's networks and their VLANs.
 *  A network the save set's cluster did not list (the VM kept a name its cluster dropped) has no known VLAN:
 *  only a map or a destination network of the same name serves it.
 *
 * Datastore, for the whole VM (its disks stay together; they need the sum of their sizes free). Only datastores
 * some up host mounts are usable.
 *  a. `--map store:S=Y`: Y, which must exist, be mounted and have room.
 *  b. the datastore named S (for a save set whose cluster named none: the one at the same path), mounted, with
 *     room: kept.
 *  c. the usable datastore with the most free space that has room (ties: by name) (rule 'most free space').
 *  d. none: a problem listing every datastore with its free space, or that no up host mounts it.
 *  When the chosen datastore's path differs from the save set's, every disk moves: its path's datastore prefix
 *  is replaced (a disk not under it goes to the datastore's top) (rule 'follows the datastore').
 *
 * CPU model (C):
 *  a. `--map cpu:C=M`: M, which the destination must offer.
 *  b. C offered: unchanged.
 *  c. a compatible model (see cpu-models.ts: the oldest newer of the same vendor, else the newest older).
 *  d. none: a problem.
 *
 * Memory never changes: the VM's memory over the destination's per-VM limit is a problem, and so is a
 * destination with no host up, or whose every up host has less memory than the VM.
 *
 * Hosts: the up hosts on the chosen datastore that can hold the VM's memory, most free memory first. A `--map`
 * whose source the VM does not use is a problem too: it is a typo or a plan for another VM.
 * A restore to an identical cluster (same networks and VLANs, same datastore and path with room, the CPU model
 * offered) changes nothing.
 */
import path from 'node:path';
import { FailedPreconditionError } from '../errors.js';
import type { VmSpec } from '../protocol/types.js';
import { compatibleCpuModel } from './cpu-models.js';
import { mappedTo } from './maps.js';
import type {
  ClusterHostState,
  ClusterNetwork,
  ClusterView,
  DatastoreState,
  DiskExport,
  NicExport,
  PlanChange,
  RestoreMaps,
  RestorePlan,
  SaveSet,
  VmExportConfig,
} from './types.js';

export const RULE_MAP = '--map';
export const RULE_SAME_VLAN = 'same VLAN';
export const RULE_FOLLOWS_DATASTORE = 'follows the datastore';

function vlanText(v: number): string {
  return v === 0 ? 'untagged' : `VLAN ${v}`;
}

/** 'VLAN 10 -> 30', 'untagged -> VLAN 30'. */
function vlanChange(from: number, to: number): string {
  return from !== 0 && to !== 0 ? `VLAN ${from} -> ${to}` : `${vlanText(from)} -> ${vlanText(to)}`;
}

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function listNetworks(cluster: string, nets: readonly ClusterNetwork[]): string {
  return nets.length === 0 ? `${cluster} has no networks` : `${cluster} has: ${nets.map((n) => `${n.name} (${vlanText(n.vlan)})`).join(', ')}`;
}

function listDatastores(stores: readonly DatastoreState[]): string {
  return stores.map((d) => `${d.name} (${d.mountedBy.length === 0 ? 'not mounted by any up host' : `${d.freeMib} MiB free`})`).join(', ');
}

/** What planning one part of the VM adds to the plan. */
interface Acc {
  changes: PlanChange[];
  problems: string[];
}

/** `known`: the save set's cluster lists the NIC's network (else its bridge and VLAN in the save set mean nothing). */
function planNic(nic: NicExport, item: string, known: boolean, dest: ClusterView, maps: RestoreMaps, acc: Acc): string {
  const c = dest.config;
  const N = nic.network;
  const mapped = mappedTo(maps.net, N);
  if (mapped !== undefined) {
    const target = c.networks.find((n) => n.name === mapped);
    if (!target) {
      acc.problems.push(`${item}: --map net:${N}=${mapped}: cluster '${c.name}' has no network '${mapped}' (${listNetworks(c.name, c.networks)})`);
      return '';
    }
    if (target.name !== N || target.vlan !== nic.vlan) {
      const rule = target.vlan === nic.vlan ? RULE_MAP : `${RULE_MAP} (${vlanChange(nic.vlan, target.vlan)})`;
      acc.changes.push({ kind: 'network', item, from: N, to: target.name, rule });
    }
    return target.name;
  }
  const same = c.networks.find((n) => n.name === N);
  if (!known) {
    // The save set's cluster did not list the network: its VLAN is unknown, so no VLAN rule can apply.
    if (same) return N;
    acc.problems.push(
      `${item}: the VM's network '${N}' was not a network of its cluster at the backup, so its VLAN is unknown, and cluster '${c.name}' has no network '${N}' (${listNetworks(c.name, c.networks)}). Map it with --map net:${N}=NAME`,
    );
    return '';
  }
  if (same && same.vlan === nic.vlan) return N;
  const onVlan = c.networks.filter((n) => n.vlan === nic.vlan);
  const pick = onVlan.find((n) => nic.bridge !== '' && n.bridge === nic.bridge) ?? [...onVlan].sort(byName)[0];
  if (pick) {
    acc.changes.push({ kind: 'network', item, from: N, to: pick.name, rule: RULE_SAME_VLAN });
    return pick.name;
  }
  const carries = nic.vlan === 0 ? 'is untagged' : `carries VLAN ${nic.vlan}`;
  const was = nic.bridge === '' ? `the VM's network '${N}'` : `the VM's network '${N}' on bridge ${nic.bridge}`;
  const sameName = same ? `; its network '${N}' carries ${same.vlan === 0 ? 'untagged traffic' : `VLAN ${same.vlan}`}` : '';
  acc.problems.push(
    `${item}: no network of cluster '${c.name}' ${carries} (${was})${sameName}; ${listNetworks(c.name, c.networks)}. Map it with --map net:${N}=NAME`,
  );
  return '';
}

/** Where a disk goes when its datastore moves from `from` to `to`. */
function movedPath(disk: DiskExport, from: string, to: string): string {
  const prefix = from.endsWith('/') ? from : `${from}/`;
  if (disk.path === from) return to;
  if (disk.path.startsWith(prefix)) return `${to.endsWith('/') ? to.slice(0, -1) : to}/${disk.path.slice(prefix.length)}`;
  return path.posix.join(to, path.posix.basename(disk.path));
}

function planDatastore(cfg: VmExportConfig, diskMib: number, dest: ClusterView, maps: RestoreMaps, acc: Acc): DatastoreState | null {
  const cname = dest.config.name;
  const { name: S, path: P } = cfg.datastore;
  const from = S === '' ? P : S;
  const usable = (d: DatastoreState): boolean => d.mountedBy.length > 0;
  const room = (d: DatastoreState): boolean => d.freeMib >= diskMib;
  let chosen: DatastoreState | null = null;
  const mapped = S === '' ? undefined : mappedTo(maps.store, S);
  if (mapped !== undefined) {
    const target = dest.datastores.find((d) => d.name === mapped);
    const head = `datastore: --map store:${S}=${mapped}`;
    if (!target) {
      const has = dest.datastores.length === 0 ? 'it has none' : `it has: ${dest.datastores.map((d) => d.name).join(', ')}`;
      acc.problems.push(`${head}: cluster '${cname}' has no datastore '${mapped}' (${has})`);
    } else if (!usable(target)) {
      acc.problems.push(`${head}: datastore '${mapped}' is not mounted by any up host of cluster '${cname}'`);
    } else if (!room(target)) {
      acc.problems.push(`${head}: datastore '${mapped}' has ${target.freeMib} MiB free, the VM's disks need ${diskMib} MiB`);
    } else {
      chosen = target;
      if (target.name !== S) acc.changes.push({ kind: 'datastore', item: 'datastore', from, to: target.name, rule: RULE_MAP });
    }
    if (!chosen) return null;
  } else {
    const same = dest.datastores.find((d) => (S === '' ? d.path === P : d.name === S));
    if (same && usable(same) && room(same)) {
      chosen = same;
    } else {
      const best = dest.datastores.filter((d) => usable(d) && room(d)).sort((a, b) => b.freeMib - a.freeMib || byName(a, b))[0];
      if (!best) {
        const all = dest.datastores.length === 0 ? `cluster '${cname}' has no datastores` : listDatastores(dest.datastores);
        acc.problems.push(`datastore: no datastore of cluster '${cname}' has room for the VM's disks (${diskMib} MiB): ${all}`);
        return null;
      }
      chosen = best;
      acc.changes.push({ kind: 'datastore', item: 'datastore', from, to: best.name, rule: `most free space (${best.freeMib} MiB free)` });
    }
  }
  if (chosen.path !== P) {
    for (const disk of cfg.disks) {
      const to = movedPath(disk, P, chosen.path);
      if (to !== disk.path) acc.changes.push({ kind: 'path', item: disk.name, from: disk.path, to, rule: RULE_FOLLOWS_DATASTORE });
    }
  }
  return chosen;
}

function planCpu(C: string, dest: ClusterView, maps: RestoreMaps, acc: Acc): string {
  const c = dest.config;
  const offers = c.cpuModels.join(', ');
  const mapped = mappedTo(maps.cpu, C);
  if (mapped !== undefined) {
    if (!c.cpuModels.includes(mapped)) {
      acc.problems.push(`cpu: --map cpu:${C}=${mapped}: cluster '${c.name}' does not offer CPU model '${mapped}' (it offers: ${offers})`);
      return '';
    }
    if (mapped !== C) acc.changes.push({ kind: 'cpu-model', item: 'cpu', from: C, to: mapped, rule: RULE_MAP });
    return mapped;
  }
  const compat = compatibleCpuModel(C, c.cpuModels);
  if (!compat) {
    acc.problems.push(`cpu: CPU model ${C} has no compatible model in cluster '${c.name}' (it offers: ${offers}); map it with --map cpu:${C}=MODEL`);
    return '';
  }
  if (compat.model !== C) acc.changes.push({ kind: 'cpu-model', item: 'cpu', from: C, to: compat.model, rule: compat.rule });
  return compat.model;
}

/** Memory problems; true when some up host has the VM's memory (so a host list is worth choosing). */
function planMemory(memoryMib: number, dest: ClusterView, up: readonly ClusterHostState[], acc: Acc): boolean {
  const c = dest.config;
  if (c.maxVmMemoryMib > 0 && memoryMib > c.maxVmMemoryMib) {
    acc.problems.push(`memory: the VM has ${memoryMib} MiB of memory, over the limit of cluster '${c.name}' (${c.maxVmMemoryMib} MiB per VM)`);
  }
  if (up.length === 0) {
    acc.problems.push(`hosts: cluster '${c.name}' has no host up`);
    return false;
  }
  if (up.every((h) => h.memoryMib < memoryMib)) {
    const list = up.map((h) => `${h.name} (${h.memoryMib} MiB)`).join(', ');
    acc.problems.push(`memory: the VM needs ${memoryMib} MiB of memory; every host of cluster '${c.name}' has less: ${list}`);
    return false;
  }
  return true;
}

/** `--map`s whose source the VM does not use. */
function unusedMaps(cfg: VmExportConfig, maps: RestoreMaps, acc: Acc): void {
  const nets = [...new Set(cfg.nics.map((n) => n.network))];
  for (const [a, b] of Object.entries(maps.net)) {
    if (nets.includes(a)) continue;
    const its = nets.length === 0 ? 'it has no NICs' : `its networks: ${nets.join(', ')}`;
    acc.problems.push(`--map net:${a}=${b}: the VM has no NIC on network '${a}' (${its})`);
  }
  for (const [x, y] of Object.entries(maps.store)) {
    if (x === cfg.datastore.name) continue;
    const on = cfg.datastore.name === '' ? `a datastore its cluster did not name (${cfg.datastore.path})` : `datastore '${cfg.datastore.name}'`;
    acc.problems.push(`--map store:${x}=${y}: the VM's disks are on ${on}, not '${x}'`);
  }
  for (const [x, y] of Object.entries(maps.cpu)) {
    if (x === cfg.cpuModel) continue;
    acc.problems.push(`--map cpu:${x}=${y}: the VM's CPU model is '${cfg.cpuModel}', not '${x}'`);
  }
}

/** Plans the restore of `saveSet` into `dest` (see the module comment for the rules). */
export function planRestore(saveSet: SaveSet, dest: ClusterView, maps: RestoreMaps): RestorePlan {
  const cfg = saveSet.config;
  const cname = dest.config.name;
  const acc: Acc = { changes: [], problems: [] };
  const known = new Set(saveSet.cluster.networks.map((n) => n.name));
  const networks = cfg.nics.map((nic, i) => planNic(nic, nic.name || `nic${i}`, known.has(nic.network), dest, maps, acc));
  const diskMib = cfg.disks.reduce((sum, d) => sum + d.sizeMib, 0);
  const store = planDatastore(cfg, diskMib, dest, maps, acc);
  const cpuModel = planCpu(cfg.cpuModel, dest, maps, acc);
  const up = dest.hosts.filter((h) => h.state === 'up');
  const memoryFits = planMemory(cfg.memoryMib, dest, up, acc);
  let hosts: string[] = [];
  if (store && memoryFits) {
    const fit = up.filter((h) => h.datastore === store.name && h.memoryMib >= cfg.memoryMib);
    hosts = fit.sort((a, b) => b.freeMemoryMib - a.freeMemoryMib || byName(a, b)).map((h) => h.name);
    if (hosts.length === 0) {
      const list = up.map((h) => `${h.name} (${h.datastore === '' ? 'no datastore of the cluster' : `datastore '${h.datastore}'`}, ${h.memoryMib} MiB)`).join(', ');
      acc.problems.push(
        `hosts: no host up in cluster '${cname}' mounts datastore '${store.name}' and has ${cfg.memoryMib} MiB of memory; up: ${list}`,
      );
    }
  }
  unusedMaps(cfg, maps, acc);
  return {
    backupId: saveSet.backupId,
    vmName: cfg.name,
    sourceCluster: saveSet.cluster.name,
    destinationCluster: cname,
    changes: acc.changes,
    problems: acc.problems,
    datastore: store ? { name: store.name, path: store.path } : null,
    hosts,
    cpuModel,
    networks,
    memoryMib: cfg.memoryMib,
    diskMib,
  };
}

/**
 * The VM spec a restore creates: the save set's spec with the plan's CPU model and networks, nothing else
 * changed (the caller gives the VM its new identity). A plan with problems cannot be applied.
 */
export function applyPlan(config: VmExportConfig, plan: RestorePlan): VmSpec {
  if (plan.problems.length > 0) {
    throw new FailedPreconditionError(
      `the restore of backup ${plan.backupId} to cluster '${plan.destinationCluster}' cannot go ahead: ${plan.problems.join('; ')}`,
    );
  }
  const { nics: _nics, ...spec } = structuredClone(config.spec);
  return {
    ...spec,
    cpuModel: plan.cpuModel,
    ...(plan.networks.length > 0 ? { nics: plan.networks.map((network) => ({ network })) } : {}),
  };
}
