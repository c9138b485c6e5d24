/**
 * Hot clones (seed 004) through the coordinator: real nats-server, real gRPC data plane, sim agents. host-a and
 * host-b share a datastore; host-c has its own.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { SimVm } from '../agent/src/drivers/sim/sim-vm.js';
import { assertGuestRunning, codeOf, driverVm, eventually, startTestFleet } from './helpers/fleet.js';
import { checkJournal, memoryWords } from './helpers/hot.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet({ agents: ['host-a', 'host-b', 'host-c'], sharedDatastore: ['host-a', 'host-b'] });
});
after(async () => {
  await fleet?.stop();
});

let n = 0;
async function createVm(o: { memoryMib?: number; dirtyRate?: number } = {}) {
  return fleet.client.createVm({
    name: `hot-src-${n++}`,
    host: 'host-a',
    memoryMib: o.memoryMib ?? 32,
    workload: { dirtyRate: o.dirtyRate ?? 20_000, pattern: 'hotset', seed: 5 + n, diskWriteRate: 400 },
    disks: [{ name: 'disk0', sizeMib: 32, image: 'base' }],
  });
}

/** Checks the buffered writes of the source's last hot freeze against its journal, with the guest parked a moment. */
async function checkSourceKeptWrites(src: SimVm): Promise<number> {
  const journal = src.lastHotFreeze?.journal();
  assert.ok(journal && journal.length > 0, 'the source buffered writes while frozen');
  await src.suspend();
  try {
    return checkJournal(journal, memoryWords(src)).lines;
  } finally {
    await src.run();
  }
}

test('a hot clone on a shared datastore: the clone has the frozen image, the source never stops and keeps every write', async () => {
  const vm = await createVm();
  const src = driverVm(fleet, 'host-a', vm.id) as SimVm;
  src.journalHotFreezes = true;
  await sleep(300);
  const suspends = src.suspendCount;
  const job = await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true, verify: true, hostname: 'hot-one', cloneName: 'hot-one' });
  assert.equal(job.kind, 'hot-clone');
  const done = await fleet.client.waitJob(job.id);
  assert.equal(done.state, 'completed', done.error);
  const hot = done.hot!;
  assert.ok(hot.frozenHash.length === 64 && hot.cloneHash === hot.frozenHash, 'the clone memory equals the frozen image');
  assert.equal(hot.sourceSuspended, false);
  assert.equal(src.suspendCount, suspends, 'the source never entered the suspended state');
  assert.deepEqual(
    hot.levels.map((l) => l.level),
    ['io', 'ram', 'vcpu'],
  );
  assert.ok(hot.bufferedWrites > 0 && hot.mergedWrites === hot.bufferedWrites, `${hot.bufferedWrites} buffered, ${hot.mergedWrites} merged`);
  assert.ok(hot.sourceStallMs < hot.frozenMs, `stall ${hot.sourceStallMs} ms while frozen ${hot.frozenMs} ms`);
  assert.equal(hot.diskLinked, true);
  assert.equal(Number(hot.diskBlocks), 0);
  assert.ok(Number(hot.sharedBaseBytes) > 0);
  await assertGuestRunning(fleet, 'host-a', vm.id);
  const lines = await checkSourceKeptWrites(src);
  assert.ok(lines > 0);

  // The clone waits, suspended, with its own identity.
  const clone = (await fleet.client.vms('host-b')).find((v) => v.id === done.plan!.targetVm)!;
  assert.equal(clone.state, 'suspended');
  assert.equal(clone.hostname, 'hot-one');
  assert.notEqual(clone.mac, vm.mac);
  assert.notEqual(clone.uuid, vm.uuid);
  assert.notEqual(clone.machineId, vm.machineId);

  // Run it: its writes go to its own overlay; the base stays shared, the source's writes stay in the source's.
  await fleet.client.runVm(clone.id);
  await sleep(400);
  const c = driverVm(fleet, 'host-b', clone.id);
  const cloneUse = c.storageUsage();
  const srcUse = src.storageUsage();
  const ids = (u: typeof cloneUse, shared: boolean) => new Set(u.filter((l) => l.shared === shared).map((l) => l.id));
  assert.deepEqual(ids(cloneUse, true), ids(srcUse, true), 'source and clone share exactly the frozen base');
  const cloneOwn = ids(cloneUse, false);
  assert.equal(cloneOwn.size, 1, 'the clone owns one overlay per disk');
  for (const id of cloneOwn) assert.ok(!srcUse.some((l) => l.id === id), 'the clone overlay is not in the source chain');
  for (const id of ids(srcUse, false)) assert.ok(!cloneUse.some((l) => l.id === id), 'the source overlay is not in the clone chain');
  const own = cloneUse.filter((l) => !l.shared).reduce((s, l) => s + l.bytes, 0);
  assert.ok(own > 0 && own < Number(hot.sharedBaseBytes), `the clone holds ${own} bytes of its own over a ${hot.sharedBaseBytes}-byte base`);
  await fleet.client.destroyVm(clone.id);
  await fleet.client.destroyVm(vm.id);
});

test('a hot clone to a host without the shared datastore is refused clearly, or copies the disks with --copy-disks', async () => {
  const vm = await createVm();
  const before = (await fleet.client.vms('host-c')).length;
  const err = await fleet.client.clone({ vm: vm.name, targetHost: 'host-c', hot: true }).then(
    () => assert.fail('refused'),
    (e: Error & { code?: string }) => e,
  );
  assert.equal(err.code, 'FAILED_PRECONDITION');
  assert.match(err.message, /does not see datastore .* --copy-disks/);
  assert.equal((await fleet.client.vms('host-c')).length, before, 'nothing was created on host-c');

  const job = await fleet.client.clone({ vm: vm.name, targetHost: 'host-c', hot: true, copyDisks: true, verify: true });
  const done = await fleet.client.waitJob(job.id);
  assert.equal(done.state, 'completed', done.error);
  assert.equal(done.hot!.diskLinked, false);
  assert.ok(Number(done.hot!.diskBlocks) > 0);
  assert.equal(done.hot!.cloneHash, done.hot!.frozenHash);
  const c = driverVm(fleet, 'host-c', done.plan!.targetVm);
  assert.ok(c.storageUsage().every((l) => !l.shared), 'a full copy shares nothing');
  await assertGuestRunning(fleet, 'host-a', vm.id);
  await fleet.client.destroyVm(done.plan!.targetVm);
  await fleet.client.destroyVm(vm.id);
});

test('cancelling a hot clone during the copy leaves the source running with all its writes, and removes the clone', async () => {
  // 128 MiB at 16 MB/s: about eight seconds of copy to cancel in.
  const vm = await createVm({ memoryMib: 128 });
  const src = driverVm(fleet, 'host-a', vm.id) as SimVm;
  src.journalHotFreezes = true;
  await sleep(200);
  const suspends = src.suspendCount;
  const job = await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true, maxBandwidthMbps: 16 });
  await eventually(async () => ((await fleet.client.job(job.id)).phase === 'memory-copy' ? true : undefined), 'the memory copy');
  await sleep(500);
  await fleet.client.cancelJob(job.id);
  const done = await fleet.client.waitJob(job.id);
  assert.equal(done.state, 'failed');
  assert.equal(done.errorName, 'AbortedError');
  assert.match(done.error, /cancel/);
  await assertGuestRunning(fleet, 'host-a', vm.id);
  assert.equal(src.suspendCount, suspends);
  await checkSourceKeptWrites(src);
  await eventually(async () => ((await fleet.client.vms('host-b')).some((v) => v.id === done.plan!.targetVm) ? undefined : true), 'the half-made clone to go');
  // The source is not left frozen: another hot clone works (once the registry has seen it running again).
  await eventually(async () => ((await fleet.client.vms('host-a')).find((v) => v.id === vm.id)?.state === 'running' ? true : undefined), 'the heartbeat');
  const again = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true })).id);
  assert.equal(again.state, 'completed', again.error);
  await fleet.client.destroyVm(again.plan!.targetVm);
  await fleet.client.destroyVm(vm.id);
});

test('without --to a hot clone picks a host on the same datastore, or says why none fits; never the source host', async () => {
  const vm = await createVm();
  const picked = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, hot: true })).id);
  assert.equal(picked.state, 'completed', picked.error);
  assert.equal(picked.plan!.targetHost, 'host-b', 'the host sharing host-a\'s datastore');
  await fleet.client.destroyVm(picked.plan!.targetVm);
  assert.equal(await codeOf(fleet.client.clone({ vm: vm.name, hot: true, targetHost: 'host-a' })), 'INVALID_ARGUMENT');
  await fleet.client.destroyVm(vm.id);

  // host-c shares its datastore with nobody.
  const lone = await fleet.client.createVm({ name: `hot-lone-${n++}`, host: 'host-c', memoryMib: 16, workload: { dirtyRate: 1000, pattern: 'hotset', seed: 3 } });
  const err = await fleet.client.clone({ vm: lone.name, hot: true }).then(
    () => assert.fail('refused'),
    (e: Error & { code?: string }) => e,
  );
  assert.equal(err.code, 'FAILED_PRECONDITION');
  assert.match(err.message, /does not see datastore .* --copy-disks/);
  const copied = await fleet.client.waitJob((await fleet.client.clone({ vm: lone.name, hot: true, copyDisks: true })).id);
  assert.equal(copied.state, 'completed', copied.error);
  assert.equal(copied.hot!.diskLinked, false);
  await fleet.client.destroyVm(copied.plan!.targetVm);
  await fleet.client.destroyVm(lone.id);
});

test('a hot clone of a suspended VM is refused; a finished job cannot be cancelled', async () => {
  const vm = await createVm();
  await driverVm(fleet, 'host-a', vm.id).suspend();
  await eventually(async () => ((await fleet.client.vms('host-a')).find((v) => v.id === vm.id)?.state === 'suspended' ? true : undefined), 'the heartbeat');
  assert.equal(await codeOf(fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true })), 'FAILED_PRECONDITION');
  await fleet.client.runVm(vm.id);
  const done = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true })).id);
  assert.equal(done.state, 'completed');
  assert.equal(await codeOf(fleet.client.cancelJob(done.id)), 'FAILED_PRECONDITION');
  await fleet.client.destroyVm(done.plan!.targetVm);
  await fleet.client.destroyVm(vm.id);
});
