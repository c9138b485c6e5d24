/**
 * The agent's half of snapshot pairs (seed 002): storage snapshots on the host's
 * own storage, driven through the agent's commands as the coordinator sends them.
 * O(1) creation, stable hashes while the guest writes, reverts, deleting a middle
 * snapshot, pending expiry, errors, and no metadata on the host.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_CHUNK_SIZE,
  connectNats,
  createRootLogger,
  sendCommand,
  type CapturedState,
  type DoppelError,
  type NatsConnection,
  type SnapshotCreateResult,
  type VmInfo,
  type VmSpec,
} from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { createDriver, type DriverVm } from '../agent/src/mod.js';
import { StorageSnapshots } from '../agent/src/snapshots/store.js';
import { contentHashOfView } from '../agent/src/backup/upload.js';
import { codeOf, driverVm, startTestFleet } from './helpers/fleet.js';

const HOST = 'host-a';
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


/** A pair's ids as the coordinator makes them: `st-<timestamp>-<suffix>`. */
function newIds(): { storageId: string; timestamp: string } {
  const timestamp = new Date().toISOString();
  return { storageId: `st-${timestamp.replace(/[-:.]/g, '')}-${randomBytes(2).toString('hex')}`, timestamp };
}

async function createVm(name: string, sizeMib: number, image = 'base'): Promise<VmInfo> {
  const spec: VmSpec = {
    name,
    memoryMib: 16,
    vcpus: 1,
    workload: { dirtyRate: 500, pattern: 'uniform', seed: 7, diskWriteRate: 2000 },
    disks: [{ name: 'disk0', sizeMib, image }],
  };
  return sendCommand(nc, HOST, 'vm.create', spec, 60_000);
}

async function snap(vmId: string, capture: boolean, commit = true): Promise<SnapshotCreateResult> {
  const made = await sendCommand(nc, HOST, 'snapshot.create', { vmId, capture, ...newIds() }, 30_000);
  if (commit) await sendCommand(nc, HOST, 'snapshot.commit', { storageId: made.storage.id });
  return made;
}

const hashOf = async (storageId: string) => (await sendCommand(nc, HOST, 'snapshot.hash', { storageId }, 30_000)).diskHashes;

/** The VM's disks now (suspended for a consistent view, then run again). */
async function liveHashes(vm: DriverVm): Promise<string[]> {
  await vm.suspend();
  try {
    const out: string[] = [];
    for (let i = 0; i < vm.disks().length; i++) out.push(await contentHashOfView(vm.liveDiskView(i), DEFAULT_CHUNK_SIZE));
    return out;
  } finally {
    await vm.run();
  }
}

function datastoreDir(): string {
  return fleet.agentObjects.get(HOST)!.driver.datastore.path;
}

async function layerCount(): Promise<number> {
  return (await readdir(path.join(datastoreDir(), 'layers'))).filter((n) => !n.startsWith('.')).length;
}

/** Layers that still carry a snapshot's pin. */
async function pinnedBy(storageId: string, dsDir = datastoreDir()): Promise<string[]> {
  const layers = (await readdir(path.join(dsDir, 'layers'))).filter((n) => !n.startsWith('.'));
  return layers.filter((l) => existsSync(path.join(dsDir, 'layers', l, 'refs', `snap-${storageId}`)));
}

const destroy = (vmId: string) => sendCommand(nc, HOST, 'vm.destroy', { vmId }, 30_000);

test('creating a storage snapshot is O(1): a 1 GiB disk takes about as long as a 256 MiB one; a pair captures usage', async () => {
  const big = await createVm('snap-big', 1024);
  const small = await createVm('snap-small', 256);
  await sleep(200);
  const times = { big: [] as number[], small: [] as number[] };
  const made: string[] = [];
  for (let i = 0; i < 3; i++) {
    for (const [k, vm] of [['big', big], ['small', small]] as const) {
      const r = await snap(vm.id, false);
      times[k].push(r.storage.createMs);
      made.push(r.storage.id);
      assert.equal(r.captured, null);
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1]!;
  const [b, s] = [median(times.big), median(times.small)];
  assert.ok(b < 200 && s < 200, `createMs big ${times.big.map((t) => t.toFixed(1))}, small ${times.small.map((t) => t.toFixed(1))}`);
  assert.ok(b < Math.max(4 * s, s + 20), `4x the disk does not take 4x the time: big ${b.toFixed(2)} ms, small ${s.toFixed(2)} ms`);

  // A pair: configuration, execution state and resource usage, sampled before the frozen moment.
  const pair = await snap(big.id, true);
  const c = pair.captured!;
  assert.ok(c, 'captured');
  assert.equal(c.config.name, 'snap-big');
  assert.equal(c.execution.runState, 'running');
  assert.ok(JSON.parse(c.execution.vcpu) && JSON.parse(c.execution.devices));
  const u = c.resources;
  assert.equal(u.memoryMib, 16);
  assert.ok(u.windowMs >= 200, `window ${u.windowMs}`);
  assert.ok(u.dirtyPagesPerS > 0 && u.diskWriteBytesPerS > 0 && u.cpuPercent > 0, `usage ${JSON.stringify(u)}`);
  assert.equal(u.diskReadBytesPerS + u.netRxBytesPerS + u.netTxBytesPerS, 0, 'the sim guest neither reads its disks nor uses its NIC');
  assert.ok(pair.pauseMs > 0 && pair.pauseMs < 500, `paused ${pair.pauseMs} ms`);
  assert.equal(driverVm(fleet, HOST, big.id).state, 'running');

  for (const id of [...made, pair.storage.id]) assert.deepEqual(await sendCommand(nc, HOST, 'snapshot.delete', { storageId: id }), { deleted: true });
  await destroy(big.id);
  await destroy(small.id);
});

test('a snapshot hashes the same while the guest writes on and after more snapshots; a revert makes the disk equal to it', async () => {
  const info = await createVm('snap-hash', 16);
  const vm = driverVm(fleet, HOST, info.id);
  await sleep(100);
  const s1 = await snap(info.id, true);
  const h1 = await hashOf(s1.storage.id);
  const w0 = vm.diskWrites();
  await sleep(300);
  assert.ok(vm.diskWrites() > w0, 'the guest writes its disk');
  assert.deepEqual(await hashOf(s1.storage.id), h1, 'unchanged by later writes');
  const s2 = await snap(info.id, false);
  await sleep(200);
  await snap(info.id, false);
  assert.deepEqual(await hashOf(s1.storage.id), h1, 'unchanged by later snapshots');
  assert.notDeepEqual(await hashOf(s2.storage.id), h1);
  assert.notDeepEqual(await liveHashes(vm), h1, 'the live disk moved on');

  // Change tracking is intact before the revert...
  const before = await vm.snapshotDisks({ checkpoint: 'probe-1' });
  assert.notEqual(before.changes[0], null);
  await before.release('abort');

  const captured: CapturedState = s1.captured!;
  const r = await sendCommand(nc, HOST, 'snapshot.revert', { vmId: info.id, storageId: s1.storage.id, config: captured.config, execution: captured.execution }, 30_000);
  assert.deepEqual(r.diskHashes, h1, 'the disk right after the revert is the snapshot');
  assert.deepEqual(r.snapshotHashes, h1);
  assert.equal(r.runState, 'running');
  assert.equal(vm.state, 'running');
  assert.ok(r.ms > 0);

  // ...and lost after it: the next backup is full.
  const afterRevert = await vm.snapshotDisks({ checkpoint: 'probe-2' });
  assert.equal(afterRevert.changes[0], null);
  await afterRevert.release('abort');

  // The configuration cannot change on the sim: a different one is refused, nothing reverted.
  const other = { ...captured.config, memoryMib: 32 };
  assert.equal(
    await codeOf(sendCommand(nc, HOST, 'snapshot.revert', { vmId: info.id, storageId: s1.storage.id, config: other, execution: captured.execution })),
    'FAILED_PRECONDITION',
  );
  // A suspended execution state leaves the VM suspended.
  const r2 = await sendCommand(nc, HOST, 'snapshot.revert', {
    vmId: info.id,
    storageId: s2.storage.id,
    config: captured.config,
    execution: { ...captured.execution, runState: 'suspended' },
  });
  assert.equal(r2.runState, 'suspended');
  assert.deepEqual(r2.diskHashes, r2.snapshotHashes);
  assert.equal(vm.state, 'suspended');
  await destroy(info.id);
});

test('deleting a middle snapshot keeps the others readable and equal by hash; the VM folds what no snapshot pins', async () => {
  const info = await createVm('snap-chain', 16);
  const vm = driverVm(fleet, HOST, info.id);
  const s1 = await snap(info.id, true);
  await sleep(200);
  const s2 = await snap(info.id, false);
  await sleep(200);
  const s3 = await snap(info.id, false);
  await sleep(100);
  const [h1, h2, h3] = [await hashOf(s1.storage.id), await hashOf(s2.storage.id), await hashOf(s3.storage.id)];
  assert.notDeepEqual(h1, h2);
  assert.notDeepEqual(h2, h3);
  await vm.settleDisks();
  const chainBefore = vm.diskChains()[0]!.length;
  assert.equal(chainBefore, 4, 'one layer per snapshot, plus the active one');
  const layersBefore = await layerCount();

  assert.deepEqual(await sendCommand(nc, HOST, 'snapshot.delete', { storageId: s2.storage.id }), { deleted: true });
  assert.deepEqual(await pinnedBy(s2.storage.id), []);
  assert.deepEqual(await hashOf(s1.storage.id), h1);
  assert.deepEqual(await hashOf(s3.storage.id), h3);
  await vm.settleDisks();
  assert.ok((await layerCount()) <= layersBefore, 'no layer more after deleting the middle snapshot');
  assert.ok(vm.diskChains()[0]!.length <= chainBefore);
  assert.equal(await codeOf(hashOf(s2.storage.id)), 'NOT_FOUND');

  // Once the newest goes too, nothing pins the layers above s1's: the VM takes them back and folds them.
  await sendCommand(nc, HOST, 'snapshot.delete', { storageId: s3.storage.id });
  await vm.settleDisks();
  assert.equal(vm.diskChains()[0]!.length, 2, `s1's base and one folded layer: ${vm.diskChains()[0]!.join(' ')}`);
  assert.ok((await layerCount()) < layersBefore);
  assert.deepEqual(await hashOf(s1.storage.id), h1);

  const c = s1.captured!;
  const r = await sendCommand(nc, HOST, 'snapshot.revert', { vmId: info.id, storageId: s1.storage.id, config: c.config, execution: c.execution }, 30_000);
  assert.deepEqual(r.diskHashes, h1);
  await sendCommand(nc, HOST, 'snapshot.delete', { storageId: s1.storage.id });
  await vm.settleDisks();
  assert.equal(vm.diskChains()[0]!.length, 1, 'no snapshot left: the chain folds back to one layer');
  assert.deepEqual(await pinnedBy(s1.storage.id), []);
  await destroy(info.id);
});

test('a pending snapshot is discarded after its timeout; unknown VMs and ids, bad ids and duplicates are clear errors', async () => {
  const info = await createVm('snap-pending', 16);
  const store = fleet.agentObjects.get(HOST)!.storageSnapshots;
  store.pendingTtlMs = 300;
  try {
    const p = await snap(info.id, false, false);
    assert.equal(p.storage.state, 'pending');
    assert.ok((await pinnedBy(p.storage.id)).length > 0);
    assert.ok((await sendCommand(nc, HOST, 'snapshot.list', {})).some((s) => s.id === p.storage.id && s.state === 'pending'));
    const committed = await snap(info.id, false, true);
    await sleep(700);
    const list = await sendCommand(nc, HOST, 'snapshot.list', {});
    assert.ok(!list.some((s) => s.id === p.storage.id), 'the pending one is gone');
    assert.ok(list.some((s) => s.id === committed.storage.id && s.state === 'committed'), 'the committed one stays');
    assert.deepEqual(await pinnedBy(p.storage.id), [], 'its pins went with it');
    assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.commit', { storageId: p.storage.id })), 'NOT_FOUND');
    await sendCommand(nc, HOST, 'snapshot.delete', { storageId: committed.storage.id });
  } finally {
    store.pendingTtlMs = 60_000;
  }

  const ids = newIds();
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.create', { vmId: 'ghost', capture: true, ...ids })), 'NOT_FOUND');
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.create', { vmId: info.id, capture: true, storageId: 'md-x', timestamp: ids.timestamp })), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.create', { vmId: info.id, capture: true, storageId: 'st-../../x', timestamp: ids.timestamp })), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.create', { vmId: info.id, capture: true, storageId: ids.storageId, timestamp: 'yesterday' })), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(hashOf(ids.storageId)), 'NOT_FOUND');
  assert.equal(await codeOf(hashOf('nonsense')), 'INVALID_ARGUMENT');
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.commit', { storageId: ids.storageId })), 'NOT_FOUND');
  assert.deepEqual(await sendCommand(nc, HOST, 'snapshot.delete', { storageId: ids.storageId }), { deleted: false });

  const s = await snap(info.id, true);
  assert.equal(await codeOf(sendCommand(nc, HOST, 'snapshot.create', { vmId: info.id, capture: false, storageId: s.storage.id, timestamp: ids.timestamp })), 'ALREADY_EXISTS');
  const { config, execution } = s.captured!;
  const revert = (vmId: string, storageId: string) => codeOf(sendCommand(nc, HOST, 'snapshot.revert', { vmId, storageId, config, execution }));
  assert.equal(await revert('ghost', s.storage.id), 'NOT_FOUND');
  assert.equal(await revert(info.id, ids.storageId), 'NOT_FOUND');
  assert.equal(await revert(info.id, 'bad id'), 'INVALID_ARGUMENT');
  const other = await createVm('snap-other', 16);
  assert.equal(await revert(other.id, s.storage.id), 'FAILED_PRECONDITION', "another VM's snapshot");
  assert.equal(
    await codeOf(sendCommand(nc, HOST, 'snapshot.revert', { vmId: info.id, storageId: s.storage.id, config, execution: { ...execution, vcpu: '{' } })),
    'INVALID_ARGUMENT',
  );

  // A VM destroyed with its snapshot: the snapshot's layers stay readable until it is deleted.
  const h = await hashOf(s.storage.id);
  await destroy(info.id);
  assert.deepEqual(await hashOf(s.storage.id), h);
  assert.equal(await revert(info.id, s.storage.id), 'NOT_FOUND');
  await sendCommand(nc, HOST, 'snapshot.delete', { storageId: s.storage.id });
  assert.deepEqual(await pinnedBy(s.storage.id), []);
  await destroy(other.id);
});

test('the host keeps no metadata: its snapshot records hold no execution state and no metadata snapshot id', async () => {
  const info = await createVm('snap-meta', 16);
  const s = await snap(info.id, true);
  const agent = fleet.agentObjects.get(HOST)!;
  const dir = path.join(agent.opts.dataDir, 'snapshots');
  const files = await readdir(dir);
  assert.ok(files.includes(`${s.storage.id}.json`));
  for (const f of files) {
    const text = await readFile(path.join(dir, f), 'utf8');
    assert.ok(!text.includes('md-'), `${f} names no metadata snapshot`);
    assert.ok(!text.includes(s.captured!.execution.vcpu) && !text.includes(s.captured!.execution.devices), `${f} holds no execution state`);
    const rec = JSON.parse(text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(rec).sort(), ['createMs', 'createdAt', 'disks', 'id', 'state', 'timestamp', 'vm']);
  }
  await sendCommand(nc, HOST, 'snapshot.delete', { storageId: s.storage.id });
  await destroy(info.id);
});

test('pending snapshots found at start are discarded with their pins; committed ones stay', async () => {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'doppel-snapstore-'));
  const log = createRootLogger({ name: 'test', level: 'silent' });
  try {
    const driver = createDriver('sim', { dataDir });
    const vm = await driver.create({
      name: 'v',
      memoryMib: 8,
      vcpus: 1,
      workload: { dirtyRate: 100, pattern: 'uniform', seed: 1, diskWriteRate: 500 },
      disks: [{ name: 'disk0', sizeMib: 8, image: 'base' }],
    });
    const store = await StorageSnapshots.open({ driver, dataDir, log });
    const kept = await store.create({ vmId: vm.id, capture: false, ...newIds() });
    await store.commit(kept.storage.id);
    const pending = await store.create({ vmId: vm.id, capture: false, ...newIds() });
    store.close();
    await driver.close();

    const driver2 = createDriver('sim', { dataDir });
    await driver2.load();
    const store2 = await StorageSnapshots.open({ driver: driver2, dataDir, log });
    assert.deepEqual(
      store2.list().map((s) => s.id),
      [kept.storage.id],
    );
    const ds = driver2.datastore.path;
    assert.deepEqual(await pinnedBy(pending.storage.id, ds), []);
    assert.ok((await pinnedBy(kept.storage.id, ds)).length > 0);
    store2.close();
    await driver2.close();
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
