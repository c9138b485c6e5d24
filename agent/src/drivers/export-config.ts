/**
 * The part of the export interface (seed 003) every driver shares: a VM's
 * configuration described against its cluster. NICs get their network's bridge
 * and VLAN, the datastore its cluster name, and the CPU model its default.
 */
import path from 'node:path';
import { DEFAULT_CPU_MODEL, NotFoundError, type ClusterConfig, type DiskExport, type VmExportConfig, type VmSpec } from '../../../shared/src/mod.js';

export interface ExportFacts {
  id: string;
  spec: VmSpec;
  /** The datastore's directory on this host. */
  datastorePath: string;
  /** Each disk's format and where it lives (in spec order). */
  disks: { format: string; path: string }[];
}

/** The datastore of `cluster` mounted at `dir`: its name, or '' when the cluster lists none there. */
export function datastoreNameAt(cluster: ClusterConfig, dir: string): string {
  const want = path.resolve(dir);
  return cluster.datastores.find((d) => path.resolve(d.path) === want)?.name ?? '';
}

export function describeAgainstCluster(f: ExportFacts, cluster: ClusterConfig): VmExportConfig {
  const { spec } = f;
  if (!spec.identity) throw new NotFoundError(`vm '${spec.name}' has no identity to export`);
  const identity = spec.identity;
  const nics = (spec.nics ?? []).map((n, i) => {
    const net = cluster.networks.find((x) => x.name === n.network);
    // A network the cluster no longer lists is exported as it was named, untagged on no bridge: a restore then
    // has to map it (its VLAN is unknown).
    return { name: `nic${i}`, network: n.network, bridge: net?.bridge ?? '', vlan: net?.vlan ?? 0, mac: i === 0 ? identity.mac : '' };
  });
  const disks: DiskExport[] = spec.disks.map((d, i) => ({
    name: d.name,
    sizeMib: d.sizeMib,
    image: d.image,
    format: f.disks[i]?.format ?? 'raw',
    path: f.disks[i]?.path ?? path.join(f.datastorePath, d.name),
  }));
  return {
    id: f.id,
    name: spec.name,
    memoryMib: spec.memoryMib,
    vcpus: spec.vcpus,
    cpuModel: spec.cpuModel || cluster.cpuModels[0] || DEFAULT_CPU_MODEL,
    nics,
    datastore: { name: datastoreNameAt(cluster, f.datastorePath), path: path.resolve(f.datastorePath) },
    disks,
    bypass: spec.bypass ?? [],
    workload: spec.workload,
    identity,
    spec,
  };
}
