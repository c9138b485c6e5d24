/** `doppel cluster add|show|list|remove`: cluster configurations (seed 003). */
import { InvalidArgumentError, parseDatastoreArg, parseNetworkArg, requireCpuModel } from '../../../shared/src/mod.js';
import type { Cluster__Output as Cluster } from '../../../shared/src/gen/doppel/v1/Cluster.js';
import { flag, int, list, parse } from '../args.js';
import { printJson, table } from '../output.js';
import { API_COMMON_HELP, COMMON, withClient } from './api.js';

export const CLUSTER_HELP = `doppel cluster add|show|list|remove: cluster configurations (seed 003).

Every agent belongs to a cluster (agent --cluster NAME, default 'default'). A
registered cluster says what its hosts offer VMs: networks (bridges with VLANs),
datastores (directories the agents mount as --datastore, with an optional quota),
CPU models and a memory limit. New VMs are checked against it, every backup
carries it in its save set, and a restore to another cluster is planned from the
differences ('doppel restore BACKUP --to-cluster NAME --dry-run'). A cluster
nobody registered is derived from its agents: one untagged network 'default', a
datastore per agent directory, CPU model qemu64.

  doppel cluster add NAME [options]   register a cluster (--replace to overwrite)
    --host NAME                 a host expected in the cluster (repeatable); its agent must run with
                                --cluster NAME, and every agent that does is a host of it
    --network NAME=BRIDGE[:VLAN]  a network (repeatable; VLAN 0 or none: untagged)
    --datastore NAME=PATH[:MIB]   a datastore at PATH on its hosts, with a quota of MIB (repeatable)
    --cpu-model MODEL           a CPU model the hosts offer (repeatable, at least one; the first is the
                                default of new VMs), as QEMU names them: Cascadelake-Server, EPYC-Rome, qemu64
    --max-vm-memory-mib N       the largest VM memory allowed (default 0: the hosts' capacity)
    --replace                   replace a registered cluster of this name
  doppel cluster show NAME      its configuration, hosts and datastores (free space, who mounts them)
  doppel cluster list           every cluster, registered or named by an agent
  doppel cluster remove NAME    forget a registered cluster (its agents then use the derived one)
${API_COMMON_HELP}`;

function printCluster(c: Cluster): void {
  console.log(`cluster ${c.name}${c.registered ? ` (registered ${c.registeredAt})` : ' (not registered: derived from its agents)'}`);
  console.log(`  cpu models: ${c.cpuModels.join(', ')}; max VM memory: ${Number(c.maxVmMemoryMib) ? `${c.maxVmMemoryMib} MiB` : 'the hosts\' capacity'}`);
  console.log('  networks:');
  console.log(table(c.networks.map((n) => ({ network: n.name, bridge: n.bridge, vlan: n.vlan || 'untagged' }))));
  console.log('  datastores:');
  console.log(
    table(
      c.datastores.map((d) => ({
        datastore: d.name,
        path: d.path,
        quota: Number(d.capacityMib) ? `${d.capacityMib} MiB` : '-',
        free: `${d.freeMib} MiB`,
        used: `${d.usedMib} MiB`,
        'mounted by': d.mountedBy.join(',') || '(no up host)',
      })),
    ),
  );
  console.log('  hosts:');
  console.log(table(c.hosts.map((h) => ({ host: h.name, state: h.state, memory: `${h.memoryMib} MiB`, free: `${h.freeMemoryMib} MiB`, datastore: h.datastore || h.datastorePath || '-' }))));
}

export async function clusterCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...COMMON,
    host: { type: 'string', multiple: true },
    network: { type: 'string', multiple: true },
    datastore: { type: 'string', multiple: true },
    'cpu-model': { type: 'string', multiple: true },
    'max-vm-memory-mib': { type: 'string' },
    replace: { type: 'boolean' },
  });
  const [sub, name] = p.positionals;
  if (flag(p, 'help') || !sub) return void console.log(CLUSTER_HELP), sub || flag(p, 'help') ? 0 : 2;
  if (sub === 'list') {
    const all = await withClient(p, (c) => c.clusters());
    if (flag(p, 'json')) return printJson(all), 0;
    console.log(
      table(
        all.map((c) => ({
          cluster: c.name,
          registered: c.registered ? 'yes' : 'no',
          hosts: c.hosts.map((h) => `${h.name}${h.state === 'up' ? '' : '(down)'}`).join(','),
          networks: c.networks.map((n) => `${n.name}/${n.vlan || 'untagged'}`).join(','),
          datastores: c.datastores.map((d) => d.name).join(','),
          'cpu models': c.cpuModels.join(','),
        })),
      ),
    );
    return 0;
  }
  if (!name) throw new InvalidArgumentError(`doppel cluster ${sub} needs a cluster name`);
  if (sub === 'show' || sub === 'add') {
    const c = await withClient(p, (client) =>
      sub === 'show'
        ? client.cluster(name)
        : client.addCluster({
            name,
            hosts: list(p, 'host'),
            networks: list(p, 'network').map(parseNetworkArg),
            datastores: list(p, 'datastore').map(parseDatastoreArg),
            cpuModels: list(p, 'cpu-model').map((m) => requireCpuModel('--cpu-model', m)),
            maxVmMemoryMib: int(p, 'max-vm-memory-mib', 0),
            replace: flag(p, 'replace'),
          }),
    );
    if (flag(p, 'json')) return printJson(c), 0;
    printCluster(c);
    return 0;
  }
  if (sub === 'remove') {
    const r = await withClient(p, (c) => c.removeCluster(name));
    if (flag(p, 'json')) return printJson({ cluster: name, ...r }), 0;
    console.log(r.removed ? `cluster ${name} removed` : `cluster ${name} was not registered`);
    return 0;
  }
  throw new InvalidArgumentError(`unknown subcommand 'cluster ${sub}' (add, show, list, remove)`);
}
