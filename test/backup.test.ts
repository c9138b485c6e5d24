/**
 * Backup through a live clone, the repository, restore and verify, end to end
 * on an in-process fleet (real nats-server, real gRPC data planes and repository).
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DISK_BLOCK_SIZE, RepositoryClient } from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Job } from '../cli/src/client.js';
import { driverVm, eventually, startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet();
});
after(async () => {
  await fleet.stop();
});
afterEach(async () => {
  for (const v of await fleet.client.vms()) await fleet.client.destroyVm(v.id).catch(() => undefined);
});

const CHUNK = 4 * 1024 * 1024;

async function backup(vm: string, opts: { incremental?: boolean; direct?: boolean; keepClone?: boolean } = {}): Promise<Job> {
  const c = fleet.client;
  const job = await c.waitJob((await c.backup({ vm, cloneHost: 'host-b', onNonConvergence: 'warn', ...opts })).id);
  assert.equal(job.state, 'completed', `${job.errorName}: ${job.error}`);
  assert.ok(job.backup?.result, 'a completed backup job carries its catalog entry');
  return job;
}

test('a backup through a live clone restores to a disk equal by hash to the snapshot, while the source keeps writing', async () => {
  const c = fleet.client;
  const vm = await c.createVm({
    name: 'busy',
    host: 'host-a',
    memoryMib: 64,
    workload: { dirtyRate: 5000, pattern: 'hotset', seed: 3, diskWriteRate: 2000 },
    disks: [{ name: 'disk0', sizeMib: 64, image: 'base' }, { name: 'data', sizeMib: 16, image: '' }],
  });
  await sleep(300);
  const src = driverVm(fleet, 'host-a', vm.id);
  const writes0 = src.diskWrites();
  const job = await backup(vm.name);
  const b = job.backup!.result!;
  assert.equal(b.mode, 'clone');
  assert.equal(b.kind, 'full');
  assert.equal(b.disks.length, 2);
  assert.ok(b.stats!.sourcePausedMs > 0 && b.stats!.sourcePausedMs < 1000, `source paused ${b.stats!.sourcePausedMs} ms`);
  assert.ok(b.stats!.chunksNew > 0 && b.stats!.bytesStored > 0);
  assert.ok(src.diskWrites() > writes0, 'the source kept writing its disk during the backup');
  assert.equal(src.state, 'running');
  // The clone was removed once backed up.
  await eventually(async () => ((await c.vms('host-b')).length === 0 ? true : undefined), 'clone removed');
  assert.equal((await c.backups(vm.name)).length, 1);

  const rj = await c.waitJob((await c.restore({ backup: b.id, toHost: 'host-b', asName: 'busy-restored' })).id);
  assert.equal(rj.state, 'completed', rj.error);
  assert.deepEqual(rj.restore!.diskHashes, b.disks.map((d) => d.contentHash), 'restored disks read back equal to the backed-up snapshot');
  const restored = (await c.vms('host-b')).find((v) => v.name === 'busy-restored');
  assert.ok(restored);
  assert.deepEqual(restored.disks.map((d) => d.name), ['disk0', 'data']);
  assert.equal(restored.memoryMib, 64);

  const v = await c.verify(b.id);
  assert.equal(v.bad.length, 0);
  assert.ok(v.chunksChecked > 0);
});

test('an incremental after about 1% of the blocks changed reads and sends about 1% of the chunks', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'inc', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 0, pattern: 'uniform', seed: 5 }, disks: [{ name: 'disk0', sizeMib: 512, image: 'base' }] });
  const full = (await backup(vm.name, { direct: true })).backup!.result!;
  assert.equal(full.kind, 'full');
  const chunks = (512 * 1024 * 1024) / CHUNK;
  // 1% of the blocks, in one place (as a guest rewriting a file does).
  const d = driverVm(fleet, 'host-a', vm.id);
  const blocks = Math.round((512 * 1024 * 1024) / DISK_BLOCK_SIZE / 100);
  await d.suspend();
  const data = Buffer.alloc(blocks * DISK_BLOCK_SIZE);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE((i * 2654435761) >>> 0, i);
  await d.writeDiskBlocks(0, 1000, data);
  await d.run();
  const inc = (await backup(vm.name, { direct: true, incremental: true })).backup!.result!;
  assert.equal(inc.kind, 'incremental', inc.fullReason);
  assert.equal(inc.baseId, full.id);
  const s = inc.stats!;
  assert.ok(s.chunksNew >= 2 && s.chunksNew <= 3, `${s.chunksNew} new chunks of ${chunks} for 1% of the blocks`);
  assert.ok(s.bytesRead <= 3 * CHUNK, `read ${s.bytesRead} bytes of ${512 * 2 ** 20}`);
  assert.equal(s.chunksTotal, chunks);
  // The incremental is a whole backup: it restores to the disk as it was.
  const rj = await c.waitJob((await c.restore({ backup: inc.id, toHost: 'host-b' })).id);
  assert.equal(rj.state, 'completed', rj.error);
  assert.equal(rj.restore!.diskHashes[0], inc.disks[0]!.contentHash);
  assert.notEqual(inc.disks[0]!.contentHash, full.disks[0]!.contentHash);
});

test('two VMs of the same image share their chunks', async () => {
  const c = fleet.client;
  const spec = { host: 'host-a', memoryMib: 32, workload: { dirtyRate: 0, pattern: 'uniform', seed: 7 }, disks: [{ name: 'disk0', sizeMib: 128, image: 'shared-img' }] };
  const one = await c.createVm({ name: 'twin-1', ...spec });
  const two = await c.createVm({ name: 'twin-2', ...spec });
  const a = (await backup(one.name, { direct: true })).backup!.result!.stats!;
  const b = (await backup(two.name, { direct: true })).backup!.result!.stats!;
  assert.ok(a.chunksNew > 0);
  assert.equal(b.chunksNew, 0, 'the second VM stores nothing new');
  assert.equal(b.chunksReused, a.chunksNew);
  assert.ok(b.bytesStored < a.bytesStored / 100);
});

test('a corrupted chunk is named by verify, and a restore refuses it', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'rot', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 0, pattern: 'uniform', seed: 9 }, disks: [{ name: 'disk0', sizeMib: 32, image: 'rot-img' }] });
  const b = (await backup(vm.name, { direct: true })).backup!.result!;
  // Flip a byte in the middle of one of this backup's chunk files.
  const repo = new RepositoryClient(fleet.repoAddr);
  const index = await repo.index(b.id, 'disk0').finally(() => repo.close());
  const name = index.digests.find((d) => d.length > 0)!.toString('hex');
  const file = path.join(await fleet.repoDir(), 'chunks', name.slice(0, 4), name);
  const bytes = await readFile(file);
  const mid = bytes.length >> 1;
  bytes[mid] = bytes[mid]! ^ 0xff;
  await writeFile(file, bytes);

  const v = await c.verify(b.id);
  assert.equal(v.bad.length, 1);
  assert.equal(v.bad[0]!.digest, name);
  const rj = await c.waitJob((await c.restore({ backup: b.id, toHost: 'host-b', asName: 'rot-restored' })).id);
  assert.equal(rj.state, 'failed');
  assert.equal(rj.errorName, 'DataCorruptionError');
  assert.match(rj.error, new RegExp(name.slice(0, 16)));
  await eventually(async () => ((await c.vms('host-b')).some((x) => x.name === 'rot-restored') ? undefined : true), 'half-restored VM removed');
});

test('clear errors: an unknown VM, an unknown backup, a restore to an unknown host', async () => {
  const c = fleet.client;
  await assert.rejects(c.backup({ vm: 'no-such-vm' }), (e: Error) => e.name === 'NotFoundError' && /no-such-vm/.test(e.message));
  await assert.rejects(c.restore({ backup: 'bk-nope', toHost: 'host-b' }), (e: Error) => e.name === 'NotFoundError' && /bk-nope/.test(e.message));
  await assert.rejects(c.verify('bk-nope'), (e: Error) => e.name === 'NotFoundError');
  const vm = await c.createVm({ name: 'lonely', host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: 4, image: '' }] });
  const b = (await backup(vm.name, { direct: true })).backup!.result!;
  await assert.rejects(c.restore({ backup: b.id, toHost: 'host-z' }), (e: Error) => e.name === 'NotFoundError' && /host-z/.test(e.message));
});

test('on a datastore both hosts share, the clone overlays the frozen disk instead of a copy, and the backup is the same', async () => {
  const shared = await startTestFleet({ sharedDatastore: true });
  try {
    const c = shared.client;
    const hosts = await c.hosts();
    assert.equal(new Set(hosts.map((h) => h.datastore)).size, 1, 'both hosts report one datastore');
    const vm = await c.createVm({ name: 'linked', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 2000, pattern: 'hotset', seed: 4, diskWriteRate: 500 }, disks: [{ name: 'disk0', sizeMib: 64, image: 'base' }] });
    await sleep(300);
    const job = await c.waitJob((await c.backup({ vm: vm.name, cloneHost: 'host-b', onNonConvergence: 'warn', keepClone: true })).id);
    assert.equal(job.state, 'completed', job.error);
    const b = job.backup!.result!;
    assert.equal(b.stats!.linkedClone, true);
    assert.equal(b.stats!.diskCopyBytes, 0, 'no block was copied');
    // The kept clone runs, isolated, on its overlay.
    const clone = (await c.vms('host-b')).find((v) => v.cloneOf === vm.id);
    assert.ok(clone, 'the clone was kept');
    assert.equal(clone.state, 'running');
    assert.equal(clone.networkIsolated, true);
    const rj = await c.waitJob((await c.restore({ backup: b.id, toHost: 'host-b', asName: 'linked-restored' })).id);
    assert.equal(rj.state, 'completed', rj.error);
    assert.equal(rj.restore!.diskHashes[0], b.disks[0]!.contentHash);
    // The source's writes after the switchover do not leak into the clone's base, nor the clone's into the source.
    assert.equal(await c.destroyVm(clone.id), true);
    assert.equal(driverVm(shared, 'host-a', vm.id).state, 'running');
  } finally {
    await shared.stop();
  }
});

test('an incremental after a clone-mode backup equals a full backup of the same disk (the clone\'s own writes are not carried over)', async () => {
  const c = fleet.client;
  // A large disk and a slow writer: the blocks the clone writes are mostly ones the source does not touch.
  const vm = await c.createVm({ name: 'diverge', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 1000, pattern: 'uniform', seed: 8, diskWriteRate: 100 }, disks: [{ name: 'disk0', sizeMib: 1024, image: '' }] });
  await sleep(200);
  // The backup is made from the clone, which runs (and writes its disk) before its snapshot. The source is
  // frozen right after the switchover, so the clone's writes are not hidden under later writes of its own.
  const src = driverVm(fleet, 'host-a', vm.id);
  const started = await c.backup({ vm: vm.name, cloneHost: 'host-b', onNonConvergence: 'warn', cloneSettleMs: 500 });
  await eventually(async () => ((await c.job(started.id)).phase === 'pre-copy' || (await c.job(started.id)).phase === '' ? undefined : true), 'switchover', 30_000);
  await src.suspend();
  try {
    const done = await c.waitJob(started.id);
    assert.equal(done.state, 'completed', done.error);
    const first = done.backup!.result!;
    const inc = (await backup(vm.name, { direct: true, incremental: true })).backup!.result!;
    assert.equal(inc.kind, 'incremental', inc.fullReason);
    assert.equal(inc.baseId, first.id);
    const full = (await backup(vm.name, { direct: true })).backup!.result!;
    assert.equal(inc.disks[0]!.contentHash, full.disks[0]!.contentHash, 'the incremental holds exactly the source disk');
  } finally {
    await src.run();
  }
});

test('a clone-mode incremental: the source\'s changes up to the switchover and the clone\'s own writes', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'cinc', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 500, pattern: 'hotset', seed: 12, diskWriteRate: 50 }, disks: [{ name: 'disk0', sizeMib: 256, image: 'base' }] });
  const full = (await backup(vm.name)).backup!.result!;
  const inc = (await backup(vm.name, { incremental: true })).backup!.result!;
  assert.equal(inc.kind, 'incremental', inc.fullReason);
  assert.equal(inc.baseId, full.id);
  assert.ok(inc.stats!.chunksNew < full.stats!.chunksNew, `${inc.stats!.chunksNew} new chunks vs ${full.stats!.chunksNew}`);
  const rj = await c.waitJob((await c.restore({ backup: inc.id, toHost: 'host-b', asName: 'cinc-restored' })).id);
  assert.equal(rj.state, 'completed', rj.error);
  assert.equal(rj.restore!.diskHashes[0], inc.disks[0]!.contentHash);
});
