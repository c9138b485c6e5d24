/**
 * Hot clones (seed 004) that lose a host in the middle of the memory copy: real nats-server, real gRPC data plane,
 * sim agents, no mocks. host-a and host-b share a datastore; host-c has its own. One more agent, host-d on the shared
 * datastore, runs as a child process of its own so that it can be killed outright (SIGKILL, as a host that dies).
 *
 * Whatever goes away, the source runs on, is never suspended, and keeps every write it buffered while frozen.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { SimVm } from '../agent/src/drivers/sim/sim-vm.js';
import { assertGuestRunning, driverVm, eventually, startTestFleet } from './helpers/fleet.js';
import { checkJournal, memoryWords } from './helpers/hot.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet({ agents: ['host-a', 'host-b', 'host-c'], sharedDatastore: ['host-a', 'host-b', 'host-d'] });
});
after(async () => {
  await fleet?.stop();
});

let n = 0;
/** 128 MiB copied at 16 MB/s: about eight seconds of memory copy to break. */
async function createVm() {
  return fleet.client.createVm({
    name: `hot-fail-${n++}`,
    host: 'host-a',
    memoryMib: 128,
    workload: { dirtyRate: 20_000, pattern: 'hotset', seed: 31 + n, diskWriteRate: 400 },
    disks: [{ name: 'disk0', sizeMib: 32, image: 'base' }],
  });
}

/** Every write the freeze buffered is in memory (that write or a later one on the same line). Returns the lines checked. */
function assertJournalMerged(src: SimVm): number {
  const journal = src.lastHotFreeze?.journal();
  assert.ok(journal && journal.length > 0, 'the source buffered writes while frozen');
  return checkJournal(journal, memoryWords(src)).lines;
}

/** The same check on a running source, parked for a moment so that its memory holds still. */
async function assertRunningSourceKeptWrites(src: SimVm): Promise<number> {
  await src.suspend();
  try {
    return assertJournalMerged(src);
  } finally {
    await src.run();
  }
}

/** Starts a hot clone of `vm` to `targetHost` and waits until its memory copy runs. */
async function hotCloneInCopy(vm: { id: string; name: string }, targetHost: string) {
  const job = await fleet.client.clone({ vm: vm.name, targetHost, hot: true, maxBandwidthMbps: 16 });
  assert.equal(job.kind, 'hot-clone');
  await eventually(async () => ((await fleet.client.job(job.id)).phase === 'memory-copy' ? true : undefined), 'the memory copy');
  // Well into the copy: the source has buffered writes by now.
  await sleep(800);
  const now = await fleet.client.job(job.id);
  assert.equal(now.state, 'running', 'the copy is still running when the host goes');
  assert.equal(now.phase, 'memory-copy');
  return job;
}

/** The source is listed as running again and is not busy: a next job can start. */
async function sourceListedRunning(vmId: string): Promise<void> {
  await eventually(async () => ((await fleet.client.vms('host-a')).find((v) => v.id === vmId)?.state === 'running' ? true : undefined), 'the heartbeat');
}

test('the target host dies (SIGKILL) during the memory copy: the job fails clearly, the source runs on with every write, and a hot clone to another host works', async (t) => {
  // host-d runs as a child process on the shared datastore: SIGKILL takes it away as a host that dies.
  await fleet.startAgent('host-d', { process: true });
  await fleet.waitHosts(['host-d']);
  try {
    const hosts = await fleet.client.hosts();
    const store = hosts.find((h) => h.name === 'host-a')?.datastore;
    assert.ok(store, 'host-a reports its datastore');
    assert.equal(hosts.find((h) => h.name === 'host-d')?.datastore, store, 'host-d sees the shared datastore');
    const vm = await createVm();
    const src = driverVm(fleet, 'host-a', vm.id) as SimVm;
    src.journalHotFreezes = true;
    await sleep(200);
    const suspends = src.suspendCount;
    const job = await hotCloneInCopy(vm, 'host-d');

    const t0 = Date.now();
    await fleet.killAgent('host-d');
    const done = await fleet.client.waitJob(job.id, undefined, 30_000);
    const failedAfterMs = Date.now() - t0;
    t.diagnostic(`${done.errorName}: ${done.error}`);
    assert.equal(done.state, 'failed');
    assert.ok(failedAfterMs < 10_000, `the job failed ${failedAfterMs} ms after the target died`);
    // The error says which host went and that it cannot be reached (UNAVAILABLE), not a generic internal error.
    assert.match(done.error, /host-d/);
    assert.equal(done.errorName, 'UnavailableError', done.error);

    // The source: running, never suspended, every buffered write merged back, no freeze left behind.
    await assertGuestRunning(fleet, 'host-a', vm.id);
    assert.equal(src.suspendCount, suspends, 'the source never entered the suspended state');
    assert.ok(src.lastHotFreeze!.bufferedWrites() > 0, 'the source buffered writes during the copy');
    // The journal first: the job's own unfreeze must have merged them (the call below would merge them too).
    const lines = await assertRunningSourceKeptWrites(src);
    assert.ok(lines > 0);
    const stats = await src.lastHotFreeze!.unfreeze();
    assert.equal(stats.mergedWrites, stats.bufferedWrites, `${stats.mergedWrites} of ${stats.bufferedWrites} buffered writes merged`);

    // Not left frozen or locked: a second hot clone of the same VM to another host of the datastore works.
    await sourceListedRunning(vm.id);
    const again = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', hot: true, verify: true })).id);
    assert.equal(again.state, 'completed', again.error);
    assert.equal(again.hot!.cloneHash, again.hot!.frozenHash);
    assert.equal(again.hot!.sourceSuspended, false);
    assert.equal(again.hot!.diskLinked, true);
    assert.equal(again.hot!.mergedWrites, again.hot!.bufferedWrites);
    assert.equal(src.suspendCount, suspends + 1, 'only the test parked the source, once');
    await assertGuestRunning(fleet, 'host-a', vm.id);
    await fleet.client.destroyVm(again.plan!.targetVm);
    await fleet.client.destroyVm(vm.id);
  } finally {
    // Gone already unless the test failed before the kill.
    await fleet.killAgent('host-d').catch(() => undefined);
  }
});

test('the target agent stops during the memory copy: the job fails, the source runs on with every write, and a hot clone to another host works', async (t) => {
  const vm = await createVm();
  const src = driverVm(fleet, 'host-a', vm.id) as SimVm;
  src.journalHotFreezes = true;
  await sleep(200);
  const suspends = src.suspendCount;
  const job = await hotCloneInCopy(vm, 'host-b');

  await fleet.stopAgent('host-b');
  try {
    const done = await fleet.client.waitJob(job.id, undefined, 30_000);
    t.diagnostic(`${done.errorName}: ${done.error}`);
    assert.equal(done.state, 'failed');
    assert.match(done.error, /host-b/);
    assert.notEqual(done.errorName, 'InternalError', done.error);

    await assertGuestRunning(fleet, 'host-a', vm.id);
    assert.equal(src.suspendCount, suspends, 'the source never entered the suspended state');
    assert.ok((await assertRunningSourceKeptWrites(src)) > 0);
    const stats = await src.lastHotFreeze!.unfreeze();
    assert.ok(stats.bufferedWrites > 0 && stats.mergedWrites === stats.bufferedWrites, `${stats.mergedWrites} of ${stats.bufferedWrites} merged`);

    // Another host (its own datastore, so the disks are copied in full).
    await sourceListedRunning(vm.id);
    const again = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-c', hot: true, copyDisks: true, verify: true })).id);
    assert.equal(again.state, 'completed', again.error);
    assert.equal(again.hot!.cloneHash, again.hot!.frozenHash);
    assert.equal(again.hot!.sourceSuspended, false);
    assert.equal(again.hot!.diskLinked, false);
    await assertGuestRunning(fleet, 'host-a', vm.id);
    await fleet.client.destroyVm(again.plan!.targetVm);
    await fleet.client.destroyVm(vm.id);
  } finally {
    // host-b comes back for the tests after this one (it still holds the half-made clone, which the coordinator reaps).
    await fleet.startAgent('host-b');
    await fleet.waitHosts(['host-b']);
  }
});

test('the source agent stops during the memory copy: the job fails at once, and the buffered writes were merged before the guest stopped', async (t) => {
  const vm = await createVm();
  const src = driverVm(fleet, 'host-a', vm.id) as SimVm;
  src.journalHotFreezes = true;
  await sleep(200);
  const suspends = src.suspendCount;
  const job = await hotCloneInCopy(vm, 'host-b');
  assert.ok(src.lastHotFreeze!.bufferedWrites() > 0, 'the source is frozen and buffering');

  const t0 = Date.now();
  await fleet.stopAgent('host-a');
  assert.ok(Date.now() - t0 < 8_000, `the stop took ${Date.now() - t0} ms with a hot clone running`);
  const done = await fleet.client.waitJob(job.id, undefined, 15_000);
  t.diagnostic(`${done.errorName}: ${done.error}`);
  assert.equal(done.state, 'failed');
  assert.equal(done.errorName, 'AbortedError', done.error);
  assert.match(done.error, /stopping/);

  // The agent has stopped its guest: nothing merges any more, so what memory holds now was merged before the stop.
  assert.notEqual(src.state, 'running');
  assert.equal(src.suspendCount, suspends, 'the source was stopped, never suspended');
  const lines = assertJournalMerged(src);
  assert.ok(lines > 0);
  // The half-made clone on host-b goes.
  await eventually(async () => ((await fleet.client.vms('host-b')).some((v) => v.id === done.plan!.targetVm) ? undefined : true), 'the half-made clone to go', 20_000);
});
