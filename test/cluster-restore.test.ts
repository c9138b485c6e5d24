/**
 * Portable save sets and restores to another cluster (seed 003), end to end on
 * an in-process fleet of two clusters: site-a (host-a and host-a2 on datastore
 * a-ssd) and site-b (host-b1 on b-bulk, host-b2 on b-fast), with renamed
 * networks on the same VLANs and older CPU models on site-b.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Backup, Job } from '../cli/src/client.js';
import { CLUSTER_FLEET, registerDemoClusters } from '../cli/src/demo/cluster-scenario.js';
import { codeOf, driverVm, eventually, startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
let backup: Backup;
let vmId = '';

before(async () => {
  fleet = await startTestFleet(CLUSTER_FLEET);
  await registerDemoClusters(fleet, fleet.client);
  const c = fleet.client;
  const vm = await c.createVm({
    name: 'web',
    host: 'host-a',
    memoryMib: 64,
    workload: { dirtyRate: 2000, pattern: 'hotset', seed: 7, diskWriteRate: 500 },
    disks: [{ name: 'disk0', sizeMib: 64, image: 'base' }, { name: 'data', sizeMib: 16, image: '' }],
    networks: ['prod'],
  });
  vmId = vm.id;
  assert.equal(vm.cpuModel, 'Cascadelake-Server', "a new VM gets its cluster's first CPU model");
  const job = await c.waitJob((await c.backup({ vm: vm.id, cloneHost: 'host-a2', onNonConvergence: 'warn' })).id);
  assert.equal(job.state, 'completed', `${job.errorName}: ${job.error}`);
  backup = job.backup!.result!;
});

after(async () => {
  await fleet.stop();
});

async function restored(job: Job): Promise<NonNullable<Job['restore']>> {
  const done = await fleet.client.waitJob(job.id);
  assert.equal(done.state, 'completed', `${done.errorName}: ${done.error}`);
  const r = done.restore!;
  assert.deepEqual(r.diskHashes, backup.disks.map((d) => d.contentHash), 'the restored disks equal the backup by hash');
  assert.ok(r.hashesMatch);
  return r;
}

test('the backup records its save set: the VM configuration and its cluster, sealed in the manifest', async () => {
  assert.equal(backup.cluster, 'site-a');
  assert.match(backup.saveSetDigest, /^[0-9a-f]{64}$/);
  const manifest = JSON.parse(await readFile(path.join(await fleet.repoDir(), 'backups', backup.id, 'manifest.json'), 'utf8')) as { metadataJson: string };
  const { saveSet } = JSON.parse(manifest.metadataJson) as { saveSet: Record<string, unknown> & { config: Record<string, unknown>; cluster: { name: string; networks: unknown[] } } };
  assert.equal(saveSet.format, 'doppel.saveset/v1');
  assert.equal(saveSet.digest, backup.saveSetDigest);
  assert.equal(saveSet.cluster.name, 'site-a');
  assert.equal(saveSet.cluster.networks.length, 2);
  assert.equal(saveSet.config.cpuModel, 'Cascadelake-Server');
  assert.deepEqual(saveSet.config.nics, [{ name: 'nic0', network: 'prod', bridge: 'br-prod', vlan: 20, mac: (saveSet.config.identity as { mac: string }).mac }]);
  assert.deepEqual(saveSet.config.datastore, { name: 'a-ssd', path: await fleet.datastorePath('a-ssd') });
  assert.deepEqual((saveSet.disks as { name: string }[]).map((d) => d.name), ['disk0', 'data']);
  assert.deepEqual(saveSet.exportedBy, { host: 'host-a', driver: 'sim' }, 'read on the VM\'s host through its driver');
});

test('a restore to an identical cluster has an empty plan, and restores equal by hash', async () => {
  const c = fleet.client;
  const plan = await c.planRestore({ backup: backup.id, toCluster: 'site-a' });
  assert.deepEqual(plan.changes, []);
  assert.deepEqual(plan.problems, []);
  assert.equal(plan.datastore, 'a-ssd');
  assert.deepEqual([...plan.hosts].sort(), ['host-a', 'host-a2']);
  assert.deepEqual((await c.planRestore({ backup: backup.id, toHost: 'host-a2' })).changes, [], 'a host of the same cluster: no changes either');
  const r = await restored(await c.restore({ backup: backup.id, toCluster: 'site-a', asName: 'web-same', start: true }));
  assert.equal(r.cluster, 'site-a');
  assert.equal(r.network, 'prod');
  assert.equal(r.cpuModel, 'Cascadelake-Server');
  await c.destroyVm('web-same');
});

test('a restore to a cluster with renamed networks, other datastores and an older CPU model applies the plan, and the VM runs', async () => {
  const c = fleet.client;
  const plan = await c.planRestore({ backup: backup.id, toCluster: 'site-b' });
  assert.deepEqual(plan.problems, []);
  const fast = await fleet.datastorePath('b-fast');
  const aSsd = await fleet.datastorePath('a-ssd');
  assert.deepEqual(
    plan.changes.map((x) => [x.kind, x.item, x.from, x.to, x.rule.replace(/ \(.*/, '')]),
    [
      ['network', 'nic0', 'prod', 'production', 'same VLAN'],
      ['datastore', 'datastore', 'a-ssd', 'b-fast', 'most free space'],
      ['path', 'disk0', path.join(aSsd, 'layers'), path.join(fast, 'layers'), 'follows the datastore'],
      ['path', 'data', path.join(aSsd, 'layers'), path.join(fast, 'layers'), 'follows the datastore'],
      ['cpu-model', 'cpu', 'Cascadelake-Server', 'Broadwell', 'compatible CPU model'],
    ],
  );
  assert.deepEqual(plan.hosts, ['host-b2']);

  const job = await c.restore({ backup: backup.id, toCluster: 'site-b', asName: 'web-b', start: true });
  const r = await restored(job);
  assert.equal(r.targetHost, 'host-b2');
  assert.equal(r.cluster, 'site-b');
  assert.equal(r.network, 'production');
  assert.equal(r.cpuModel, 'Broadwell');
  assert.equal(r.datastorePath, fast);
  assert.equal(r.plan?.changes.length, plan.changes.length, 'the job records the plan it applied');
  const vm = await eventually(async () => (await c.vms('host-b2')).find((v) => v.name === 'web-b' && v.state === 'running'), 'restored VM running');
  assert.equal(vm.cpuModel, 'Broadwell');
  assert.deepEqual(vm.networks, ['production']);
  // Its disks were written into b-fast: every layer of its chains is a directory there.
  for (const chain of driverVm(fleet, 'host-b2', vm.id).diskChains()) {
    for (const layer of chain) assert.ok(existsSync(path.join(fast, 'layers', layer)), `layer ${layer} is on b-fast`);
  }
  // The save set was copied to the destination for the import, and the copy removed once done.
  const imports = path.join(fast, 'imports');
  assert.ok(existsSync(imports), 'the save set was copied under the datastore');
  assert.deepEqual(readdirSync(imports), []);
  await c.destroyVm('web-b');
});

test('--map overrides the rules: network, datastore and CPU model', async () => {
  const c = fleet.client;
  const maps = ['net:prod=lab', 'store:a-ssd=b-bulk', 'cpu:Cascadelake-Server=Haswell'];
  const plan = await c.planRestore({ backup: backup.id, toCluster: 'site-b', maps });
  assert.deepEqual(plan.problems, []);
  const byKind = new Map(plan.changes.filter((x) => x.kind !== 'path').map((x) => [x.kind, x]));
  assert.equal(byKind.get('network')?.to, 'lab');
  assert.match(byKind.get('network')?.rule ?? '', /^--map/);
  assert.match(byKind.get('network')?.rule ?? '', /VLAN 20 -> 30/, 'a map onto another VLAN says so');
  assert.equal(byKind.get('datastore')?.to, 'b-bulk');
  assert.match(byKind.get('datastore')?.rule ?? '', /^--map/);
  assert.equal(byKind.get('cpu-model')?.to, 'Haswell');
  assert.deepEqual(plan.hosts, ['host-b1']);

  const r = await restored(await c.restore({ backup: backup.id, toCluster: 'site-b', maps, asName: 'web-mapped' }));
  assert.equal(r.targetHost, 'host-b1');
  assert.equal(r.network, 'lab');
  assert.equal(r.cpuModel, 'Haswell');
  assert.equal(r.datastorePath, await fleet.datastorePath('b-bulk'));
  await c.destroyVm('web-mapped');

  // A map onto something the destination lacks is a problem of the plan; a malformed one a bad request.
  const bad = await c.planRestore({ backup: backup.id, toCluster: 'site-b', maps: ['net:prod=nowhere'] });
  assert.match(bad.problems.join('\n'), /nowhere/);
  assert.equal(await codeOf(c.planRestore({ backup: backup.id, toCluster: 'site-b', maps: ['disk:a=b'] })), 'INVALID_ARGUMENT');
});

test('an impossible restore fails with every reason before any data moves', async () => {
  const c = fleet.client;
  const siteB = await c.cluster('site-b');
  const tight = {
    name: 'site-b',
    hosts: siteB.hosts.map((h) => h.name),
    networks: [{ name: 'lab', bridge: 'br1', vlan: 30 }],
    datastores: siteB.datastores.map((d) => ({ name: d.name, path: d.path, capacityMib: 16 })),
    cpuModels: siteB.cpuModels,
    maxVmMemoryMib: 32,
  };
  await c.addCluster({ ...tight, replace: true });
  try {
    const jobsBefore = (await c.jobs()).length;
    const err = await c.restore({ backup: backup.id, toCluster: 'site-b', asName: 'web-impossible' }).then(
      () => assert.fail('the restore was accepted'),
      (e: { code?: string; message: string }) => e,
    );
    assert.equal(err.code, 'FAILED_PRECONDITION');
    assert.match(err.message, /nothing was copied/);
    assert.match(err.message, /VLAN 20/);
    assert.match(err.message, /room/);
    assert.match(err.message, /64 MiB of memory.*32 MiB/s);
    assert.equal((await c.jobs()).length, jobsBefore, 'no restore job was started');
    assert.equal((await c.vms()).filter((v) => v.name === 'web-impossible').length, 0);
    for (const ds of ['b-bulk', 'b-fast']) {
      const imports = path.join(await fleet.datastorePath(ds), 'imports');
      assert.ok(!existsSync(imports) || readdirSync(imports).length === 0, `nothing copied to ${ds}`);
    }
    // The same plan over HTTP, as a dry run: 200 with the problems.
    const res = await fetch(`http://${fleet.httpAddr}/v1/backups/${backup.id}/restore-plan`, { method: 'POST', body: JSON.stringify({ toCluster: 'site-b' }) });
    assert.equal(res.status, 200);
    const plan = (await res.json()) as { problems: string[] };
    assert.equal(plan.problems.length, 3);
  } finally {
    await c.addCluster({ ...tight, networks: siteB.networks, datastores: siteB.datastores.map((d) => ({ name: d.name, path: d.path, capacityMib: d.capacityMib })), maxVmMemoryMib: siteB.maxVmMemoryMib, replace: true });
  }
});

test('a corrupt or foreign save set is refused, and nothing is restored', async () => {
  const c = fleet.client;
  const file = path.join(await fleet.repoDir(), 'backups', backup.id, 'manifest.json');
  const original = await readFile(file, 'utf8');
  const edit = async (change: (saveSet: Record<string, unknown> & { config: Record<string, unknown> }) => void) => {
    const m = JSON.parse(original) as { metadataJson: string };
    const meta = JSON.parse(m.metadataJson) as { saveSet: Record<string, unknown> & { config: Record<string, unknown> } };
    change(meta.saveSet);
    await writeFile(file, JSON.stringify({ ...m, metadataJson: JSON.stringify(meta) }));
  };
  // A second backup, whose (valid) save set is pasted into the first's manifest.
  const other = await c.waitJob((await c.backup({ vm: vmId, direct: true })).id);
  assert.equal(other.state, 'completed', other.error);
  const otherManifest = JSON.parse(await readFile(path.join(await fleet.repoDir(), 'backups', other.backup!.result!.id, 'manifest.json'), 'utf8')) as { metadataJson: string };
  const otherSaveSet = (JSON.parse(otherManifest.metadataJson) as { saveSet: unknown }).saveSet;
  const cases: [string, (s: Record<string, unknown> & { config: Record<string, unknown> }) => void, string, RegExp][] = [
    ['a changed field', (s) => void (s.config.memoryMib = 65536), 'DATA_LOSS', /corrupt/],
    ['another format', (s) => void (s.format = 'ovf/2.0'), 'FAILED_PRECONDITION', /not a doppel save set/],
    ['another backup\'s save set', (s) => Object.assign(s, otherSaveSet), 'FAILED_PRECONDITION', /belongs to backup/],
  ];
  try {
    for (const [what, change, code, message] of cases) {
      await edit(change);
      for (const call of [() => c.planRestore({ backup: backup.id, toCluster: 'site-b' }), () => c.restore({ backup: backup.id, toCluster: 'site-b', asName: 'web-bad' })]) {
        const err = await call().then(() => assert.fail(`${what}: accepted`), (e: { code?: string; message: string }) => e);
        assert.equal(err.code, code, `${what}: ${err.message}`);
        assert.match(err.message, message, what);
      }
    }
  } finally {
    await writeFile(file, original);
  }
  assert.equal((await c.vms()).filter((v) => v.name === 'web-bad').length, 0);
  assert.deepEqual((await c.planRestore({ backup: backup.id, toCluster: 'site-a' })).changes, [], 'the restored manifest is accepted again');
});

test('clusters: listed with their hosts and datastores; VMs and cluster configurations are checked', async () => {
  const c = fleet.client;
  const list = await c.clusters();
  assert.deepEqual(list.map((x) => x.name), ['site-a', 'site-b']);
  const b = await c.cluster('site-b');
  assert.ok(b.registered);
  assert.deepEqual(b.datastores.map((d) => [d.name, d.mountedBy]), [['b-bulk', ['host-b1']], ['b-fast', ['host-b2']]]);
  assert.ok(Number(b.datastores[1]!.freeMib) > 0 && Number(b.datastores[1]!.freeMib) <= 8192, 'free space within the quota');
  assert.deepEqual(b.hosts.map((h) => [h.name, h.state, h.datastore]), [['host-b1', 'up', 'b-bulk'], ['host-b2', 'up', 'b-fast']]);
  // A VM's NIC must be on one of its cluster's networks, its CPU model one the cluster offers.
  assert.equal(await codeOf(c.createVm({ name: 'x1', host: 'host-b1', memoryMib: 16, networks: ['prod'] })), 'FAILED_PRECONDITION');
  assert.equal(await codeOf(c.createVm({ name: 'x2', host: 'host-b1', memoryMib: 16, cpuModel: 'Cascadelake-Server' })), 'FAILED_PRECONDITION');
  assert.equal(await codeOf(c.createVm({ name: 'x3', host: 'host-b1', memoryMib: 8192 })), 'FAILED_PRECONDITION');
  // Registration is validated, and a second add of the same name needs --replace.
  assert.equal(await codeOf(c.addCluster({ name: 'bad', networks: [{ name: 'n', bridge: 'br0', vlan: 5000 }], cpuModels: ['qemu64'] })), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(c.addCluster({ name: 'bad', datastores: [{ name: 'd', path: 'relative/path', capacityMib: 0 }], cpuModels: ['qemu64'] })), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(c.addCluster({ name: 'site-a', cpuModels: ['qemu64'] })), 'ALREADY_EXISTS');
  // A host is in the cluster its agent names: listing one of another cluster's hosts is refused.
  const stolen = await c.addCluster({ name: 'site-x', hosts: ['host-b1'], cpuModels: ['qemu64'] }).then(() => assert.fail('accepted'), (e: { code?: string; message: string }) => e);
  assert.equal(stolen.code, 'FAILED_PRECONDITION');
  assert.match(stolen.message, /host 'host-b1' runs in cluster 'site-b'.*--cluster site-x/);
  // JSON bodies are checked: maps and networks are lists of strings.
  for (const [url, body] of [
    [`/v1/backups/${backup.id}/restore`, { toCluster: 'site-b', maps: 'net:prod=lab' }],
    ['/v1/vms', { name: 'y1', host: 'host-b1', memoryMib: 16, networks: 'production' }],
    ['/v1/vms', { name: 'y2', host: 'host-b1', memoryMib: 16, nics: [null] }],
  ] as const) {
    const res = await fetch(`http://${fleet.httpAddr}${url}`, { method: 'POST', body: JSON.stringify(body) });
    assert.equal(res.status, 400, `${url} ${JSON.stringify(body)}: ${await res.text()}`);
  }
  assert.equal(await codeOf(c.cluster('nowhere')), 'NOT_FOUND');
  assert.equal(await codeOf(c.planRestore({ backup: backup.id, toCluster: 'nowhere' })), 'NOT_FOUND');
});
