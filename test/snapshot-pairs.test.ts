/**
 * Snapshot pairs (seed 002) end to end on an in-process fleet: the coordinator
 * with its KV store and catalog, agents with their host storage.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kvm } from '@nats-io/kv';
import { jetstreamManager } from '@nats-io/jetstream';
import { BUCKETS, connectNats, sendCommand, type DoppelError, type NatsConnection } from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Event } from '../cli/src/client.js';
import { codeOf, startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
let nc: NatsConnection;
before(async () => {
  fleet = await startTestFleet();
  nc = await connectNats(fleet.nats.url, 'test');
});
after(async () => {
  await nc.close();
  await fleet.stop();
});


async function writingVm(name: string) {
  return fleet.client.createVm({
    name,
    host: 'host-a',
    memoryMib: 16,
    workload: { dirtyRate: 500, pattern: 'uniform', seed: 4, diskWriteRate: 2000 },
    disks: [{ name: 'disk0', sizeMib: 16, image: 'base' }],
  });
}

const hashOf = async (host: string, storageId: string) => (await sendCommand(nc, host, 'snapshot.hash', { storageId })).diskHashes;

/** Every file under `dir` (the host's storage), for a string. */
async function filesContaining(dir: string, needle: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && (await stat(p)).size < 256 * 2 ** 20 && (await readFile(p)).includes(needle)) found.push(p);
    }
  };
  await walk(dir);
  return found;
}

test('a pair: the same timestamp in both ids, the metadata in KV and nowhere on the host, and a revert restores the disk', async () => {
  const c = fleet.client;
  const vm = await writingVm('pair-vm');
  await sleep(200);
  const pair = await c.createSnapshot(vm.name);
  const s = pair.storage!;
  const m = pair.metadata!;
  assert.equal(s.timestamp, m.timestamp, 'storage and metadata snapshots carry the same timestamp');
  assert.equal(s.id.slice(3), m.id.slice(3), 'the ids share the timestamp (and suffix)');
  assert.equal(s.metadataId, m.id, 'the catalog links them');
  assert.equal(s.host, 'host-a');
  assert.equal(m.store, `nats-kv://${BUCKETS.snapshotMeta}/${m.id}`);
  assert.equal(m.runState, 'running');
  assert.ok(m.vcpuState.length > 2 && m.deviceState.length > 2, 'the execution state is in the metadata');
  assert.ok(m.resources!.memoryMib === 16 && m.resources!.diskWriteBytesPerS > 0, `resource usage: ${JSON.stringify(m.resources)}`);
  assert.ok(s.createMs < 200, `created in ${s.createMs} ms`);

  // Nowhere on the host's storage (agent state and datastore): not the metadata id, not the vCPU state.
  const agent = fleet.agentObjects.get('host-a')!;
  for (const dir of [agent.opts.dataDir, agent.driver.datastore.path]) {
    assert.deepEqual(await filesContaining(dir, m.id), [], `metadata id on host storage under ${dir}`);
    assert.deepEqual(await filesContaining(dir, m.vcpuState), [], `vCPU state on host storage under ${dir}`);
  }
  const kvEntry = await (await new Kvm(nc).open(BUCKETS.snapshotMeta)).get(m.id);
  assert.equal(kvEntry?.revision, m.revision, 'the metadata snapshot is in the KV bucket');

  const expected = await hashOf('host-a', s.id);
  await sleep(500); // the guest writes on
  const revert = await c.revertSnapshot(s.id);
  assert.ok(revert.hashesMatch);
  assert.deepEqual(revert.diskHashes, expected, 'the disk after the revert equals the snapshot taken before the writes');
  assert.equal(revert.runState, 'running');
  await c.destroyVm(vm.id);
});

test('a storage-only snapshot links to the existing metadata snapshot and leaves its KV revision where it was', async () => {
  const c = fleet.client;
  const vm = await writingVm('update-vm');
  assert.equal(await codeOf(c.createSnapshot(vm.name, true)), 'FAILED_PRECONDITION', 'no metadata to link to yet');
  const pair = await c.createSnapshot(vm.name);
  await sleep(300);
  const update = await c.createSnapshot(vm.name, true);
  assert.equal(update.storage!.kind, 'update');
  assert.equal(update.storage!.metadataId, pair.metadata!.id);
  assert.notEqual(update.storage!.timestamp, pair.metadata!.timestamp);
  const shown = await c.snapshot(pair.metadata!.id);
  assert.equal(shown.metadata[0]!.revision, pair.metadata!.revision, 'metadata revision unchanged');
  assert.deepEqual(shown.storage.map((x) => x.id), [pair.storage!.id, update.storage!.id]);
  const tree = await c.snapshots(vm.name);
  assert.equal(tree.metadata.length, 1);
  assert.equal(tree.storage.length, 2);
  await c.destroyVm(vm.id);
});

test('deleting a middle snapshot keeps the others readable and equal by hash; the metadata goes with its last storage snapshot', async () => {
  const c = fleet.client;
  const vm = await writingVm('chain-vm');
  const s1 = (await c.createSnapshot(vm.name)).storage!;
  await sleep(300);
  const s2 = (await c.createSnapshot(vm.name, true)).storage!;
  await sleep(300);
  const s3 = (await c.createSnapshot(vm.name, true)).storage!;
  const h1 = await hashOf('host-a', s1.id);
  const h2 = await hashOf('host-a', s2.id);
  const h3 = await hashOf('host-a', s3.id);
  assert.notDeepEqual(h1, h2, 'the guest wrote between the snapshots');
  assert.notDeepEqual(h2, h3);
  const del = await c.deleteSnapshot(s2.id);
  assert.deepEqual({ ...del }, { deleted: true, metadataDeleted: false });
  assert.deepEqual(await hashOf('host-a', s1.id), h1);
  assert.deepEqual(await hashOf('host-a', s3.id), h3);
  assert.equal(await codeOf(c.snapshot(s2.id)), 'NOT_FOUND');
  const r = await c.revertSnapshot(s1.id);
  assert.deepEqual(r.diskHashes, h1);
  await c.deleteSnapshot(s3.id);
  const last = await c.deleteSnapshot(s1.id);
  assert.equal(last.metadataDeleted, true);
  assert.equal((await c.snapshots(vm.name)).metadata.length, 0);
  await c.destroyVm(vm.id);
});

test('check finds storage snapshots without metadata and metadata without storage', async () => {
  const c = fleet.client;
  const vm = await writingVm('orphan-vm');
  const a = await c.createSnapshot(vm.name);
  const b = await c.createSnapshot(vm.name);
  assert.deepEqual([...(await c.checkSnapshots()).storageWithoutMetadata], []);
  // Lose a's metadata behind the coordinator's back, and b's storage snapshot on the host.
  await (await new Kvm(nc).open(BUCKETS.snapshotMeta)).delete(a.metadata!.id);
  await sendCommand(nc, 'host-a', 'snapshot.delete', { storageId: b.storage!.id });
  const report = await c.checkSnapshots();
  assert.deepEqual(report.storageWithoutMetadata, [a.storage!.id]);
  assert.deepEqual(report.metadataWithoutStorage, [b.metadata!.id]);
  assert.deepEqual(report.hostsChecked, ['host-a', 'host-b']);
  // A storage snapshot without metadata cannot be reverted: a clear error.
  assert.equal(await codeOf(c.revertSnapshot(a.storage!.id)), 'FAILED_PRECONDITION');
  await c.destroyVm(vm.id);
});

test('clear errors: an unknown VM, a missing or malformed id; losing the metadata store midway leaves nothing linked', async () => {
  const c = fleet.client;
  assert.equal(await codeOf(c.createSnapshot('ghost')), 'NOT_FOUND');
  assert.equal(await codeOf(c.revertSnapshot('st-20260101T000000000Z-abcd')), 'NOT_FOUND');
  assert.equal(await codeOf(c.revertSnapshot('nonsense')), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(c.deleteSnapshot('md-20260101T000000000Z-abcd')), 'INVALID_ARGUMENT');

  const vm = await writingVm('lost-store-vm');
  const before = (await sendCommand(nc, 'host-a', 'snapshot.list', {})).length;
  // The metadata store goes away between the host's storage snapshot and the metadata write.
  await (await jetstreamManager(nc)).streams.delete(`KV_${BUCKETS.snapshotMeta}`);
  const err = await c.createSnapshot(vm.name).then(
    () => undefined,
    (e: DoppelError) => e,
  );
  assert.ok(err, 'the snapshot failed');
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(err.message, /rolled back/);
  assert.equal((await sendCommand(nc, 'host-a', 'snapshot.list', {})).length, before, 'the host kept no storage snapshot');
  // The coordinator recreates its buckets when it starts again; the catalog holds nothing of the failed pair.
  await fleet.restartCoordinator();
  const c2 = fleet.client;
  assert.equal((await c2.snapshots(vm.name)).storage.length, 0);
  assert.equal((await c2.snapshots(vm.name)).metadata.length, 0);
  await c2.destroyVm(vm.id);
});

test('snapshot created, reverted and deleted are events', async () => {
  const c = fleet.client;
  const vm = await writingVm('events-vm');
  const s = (await c.createSnapshot(vm.name)).storage!;
  await c.revertSnapshot(s.id);
  await c.deleteSnapshot(s.id);
  const seen: Event[] = [];
  await c.events({ all: true }, (e) => seen.push(e));
  const types = seen.filter((e) => e.vm === vm.id).map((e) => e.type);
  for (const t of ['snapshot.created', 'snapshot.reverted', 'snapshot.deleted']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
  await c.destroyVm(vm.id);
});
