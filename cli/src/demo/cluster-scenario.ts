/**
 * Scenario `cross-cluster-restore` (seed 003): two clusters that differ in
 * networks, datastores and CPU models. A VM on site-a is backed up through a
 * live clone; its save set carries its configuration and site-a's. The backup
 * is planned for site-b (a dry run), restored there with the plan's changes,
 * started, and its disk compared with the backup's by hash. A restore site-b
 * could not satisfy is shown failing before any data moves.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError, toDoppelError } from '../../../shared/src/mod.js';
import type { LocalFleet, LocalFleetOptions } from '../fleet/local-fleet.js';
import { printBackupJob, printPlan, waitWithProgress } from '../commands/backup.js';
import type { DemoArgs } from './clone-scenario.js';
import type { CoordinatorClient } from '../client.js';

/** The scenario's fleet: site-a's two hosts share datastore a-ssd; site-b's mount b-bulk and b-fast. */
export const CLUSTER_FLEET: LocalFleetOptions = {
  agents: ['host-a', 'host-a2', 'host-b1', 'host-b2'],
  hosts: {
    'host-a': { cluster: 'site-a', datastore: 'a-ssd' },
    'host-a2': { cluster: 'site-a', datastore: 'a-ssd' },
    'host-b1': { cluster: 'site-b', datastore: 'b-bulk' },
    'host-b2': { cluster: 'site-b', datastore: 'b-fast' },
  },
};

/** Registers site-a and site-b: renamed networks on the same VLANs, other datastores, older CPU models. */
export async function registerDemoClusters(fleet: LocalFleet, c: CoordinatorClient): Promise<void> {
  await c.addCluster({
    name: 'site-a',
    hosts: ['host-a', 'host-a2'],
    networks: [
      { name: 'prod', bridge: 'br-prod', vlan: 20 },
      { name: 'mgmt', bridge: 'br-mgmt', vlan: 0 },
    ],
    datastores: [{ name: 'a-ssd', path: await fleet.datastorePath('a-ssd'), capacityMib: 0 }],
    cpuModels: ['Cascadelake-Server', 'Skylake-Server'],
    maxVmMemoryMib: 0,
  });
  await c.addCluster({
    name: 'site-b',
    hosts: ['host-b1', 'host-b2'],
    networks: [
      { name: 'production', bridge: 'br0', vlan: 20 },
      { name: 'lab', bridge: 'br1', vlan: 30 },
    ],
    datastores: [
      { name: 'b-bulk', path: await fleet.datastorePath('b-bulk'), capacityMib: 2048 },
      { name: 'b-fast', path: await fleet.datastorePath('b-fast'), capacityMib: 8192 },
    ],
    cpuModels: ['Broadwell', 'Haswell'],
    maxVmMemoryMib: 4096,
  });
}

export async function clusterScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const say = (s: string) => (a.quiet ? undefined : console.log(s));
  await registerDemoClusters(fleet, c);
  say('registered site-a (prod on VLAN 20, datastore a-ssd, Cascadelake-Server) and site-b (production on VLAN 20, b-bulk and b-fast, Broadwell/Haswell)');
  const vm = await c.createVm({
    name: 'demo-vm',
    host: 'host-a',
    memoryMib: a.vmMemoryMib,
    vcpus: 2,
    workload: { dirtyRate: a.dirtyRate, pattern: a.pattern, seed: a.seed, diskWriteRate: a.diskWriteRate },
    disks: [{ name: 'disk0', sizeMib: a.diskMib, image: 'base' }],
    networks: ['prod'],
  });
  say(`created ${vm.name} on ${vm.host} (site-a): network ${vm.networks.join(',')}, CPU ${vm.cpuModel}, ${a.vmMemoryMib} MiB, ${a.diskMib} MiB disk`);
  await sleep(500);

  say(`backing ${vm.name} up through a live clone on host-a2; the save set carries its configuration and site-a's…`);
  const bj = await waitWithProgress(c, await c.backup({ vm: vm.id, cloneHost: 'host-a2', maxDowntimeMs: a.maxDowntimeMs }), 'backup');
  if (!a.quiet) printBackupJob(bj);
  const b = bj.backup?.result;
  if (bj.state !== 'completed' || !b) throw new InternalError(`backup job ${bj.id} ${bj.state}: ${bj.error}`);

  say(`planning the restore of ${b.id} to site-b (--dry-run)…`);
  const plan = await c.planRestore({ backup: b.id, toCluster: 'site-b' });
  if (!a.quiet) printPlan(plan);

  say("a restore to site-c (no network on VLAN 20, AMD CPUs only, a 128 MiB VM limit, no host up) fails before any data moves:");
  await c.addCluster({
    name: 'site-c',
    hosts: ['host-c1'],
    networks: [{ name: 'lab', bridge: 'br1', vlan: 30 }],
    datastores: [{ name: 'c-ssd', path: '/srv/doppel/c-ssd', capacityMib: 0 }],
    cpuModels: ['EPYC-Rome'],
    maxVmMemoryMib: 128,
  });
  let refused = '';
  try {
    await c.restore({ backup: b.id, toCluster: 'site-c', asName: 'demo-vm-refused' });
  } catch (err) {
    refused = toDoppelError(err).message;
  }
  for (const line of (refused || 'NOT REFUSED').split('\n')) say(`  ${line}`);
  const vmsAfterRefusal = (await c.vms()).filter((v) => v.name === 'demo-vm-refused').length;

  say(`restoring ${b.id} to site-b with the plan's changes…`);
  const rj = await waitWithProgress(c, await c.restore({ backup: b.id, toCluster: 'site-b', asName: 'demo-vm-site-b', start: true }), 'restore');
  if (rj.state !== 'completed' || !rj.restore) throw new InternalError(`restore job ${rj.id} ${rj.state}: ${rj.error}`);
  const r = rj.restore;
  let restored = (await c.vms(r.targetHost)).find((v) => v.id === r.vmId);
  for (let i = 0; i < 30 && restored?.state !== 'running'; i++) {
    await sleep(100);
    restored = (await c.vms(r.targetHost)).find((v) => v.id === r.vmId);
  }
  const backupHash = b.disks[0]?.contentHash ?? '';
  const restoreHash = r.diskHashes[0] ?? '';
  say(
    `restored ${r.vmName} on ${r.targetHost} (cluster ${r.cluster}): network ${r.network}, CPU ${r.cpuModel}, datastore ${r.datastorePath}; ` +
      `disk hash ${restoreHash.slice(0, 16)}… ${restoreHash === backupHash ? 'equals' : 'DIFFERS FROM'} the backup's; the VM is ${restored?.state ?? 'gone'}`,
  );
  const changes = plan.changes.map((x) => ({ kind: x.kind, item: x.item, from: x.from, to: x.to, rule: x.rule }));
  return {
    ok:
      restoreHash === backupHash &&
      restored?.state === 'running' &&
      r.cluster === 'site-b' &&
      r.network === 'production' &&
      r.cpuModel === 'Broadwell' &&
      plan.problems.length === 0 &&
      changes.length > 0 &&
      refused !== '' &&
      vmsAfterRefusal === 0,
    vm: { id: vm.id, host: vm.host, cluster: 'site-a', network: vm.networks[0] ?? '', cpuModel: vm.cpuModel, memoryMib: a.vmMemoryMib, diskMib: a.diskMib },
    backup: { id: b.id, cluster: b.cluster, saveSetDigest: b.saveSetDigest, diskHash: backupHash, mode: b.mode },
    plan: { sourceCluster: plan.sourceCluster, destinationCluster: plan.destinationCluster, changes, datastore: plan.datastore, hosts: plan.hosts, problems: plan.problems },
    restore: {
      jobId: rj.id,
      vmId: r.vmId,
      host: r.targetHost,
      cluster: r.cluster,
      network: r.network,
      datastorePath: r.datastorePath,
      cpuModel: r.cpuModel,
      diskHash: restoreHash,
      state: restored?.state ?? 'unknown',
      bytesWritten: r.bytesWritten,
      ms: r.ms,
    },
    impossible: { refused: refused !== '', error: refused, vmsCreated: vmsAfterRefusal },
  };
}
