/**
 * Live clone by iterative pre-copy, end to end: real nats-server, coordinator,
 * two agents with real gRPC data planes, a guest workload writing all along.
 */
import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FailedPreconditionError, WORKLOAD_PATTERNS } from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { assertGuestRunning, driverVm, startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet();
});
after(async () => {
  await fleet.stop();
});
// Each test starts on a quiet fleet: leftover guests would eat the CPU the next measurement needs.
afterEach(async () => {
  for (const v of await fleet.client.vms()) await fleet.client.destroyVm(v.id).catch(() => undefined);
});

for (const pattern of WORKLOAD_PATTERNS) {
  test(`clone memory equals the source's at suspension, under an active ${pattern} workload`, async () => {
    const c = fleet.client;
    const vm = await c.createVm({ name: `busy-${pattern}`, host: 'host-a', memoryMib: 64, workload: { dirtyRate: 20_000, pattern, seed: 11 } });
    await new Promise((r) => setTimeout(r, 200));
    // This test is about exactness under writes, whatever the planner predicts on a loaded machine.
    const started = await c.clone({ vm: vm.name, targetHost: 'host-b', verify: true, onNonConvergence: 'warn' });
    assert.equal(started.plan?.sourceHost, 'host-a');
    const job = await c.waitJob(started.id);
    assert.equal(job.state, 'completed', job.error);
    const s = job.stats!;
    assert.match(s.sourceHash, /^[0-9a-f]{64}$/);
    assert.equal(s.cloneHash, s.sourceHash, 'clone memory hash equals source memory hash at suspension');
    const resent = s.pagesPerRound.slice(1).reduce((a, b) => a + b, 0) + s.finalPages;
    assert.ok(resent > 0, 'pages the guest dirtied during round 0 were sent again (later rounds or the final set)');
    assert.equal(s.pagesPerRound[0], (64 * 1024 * 1024) / 4096, 'round 0 sends every page');
    assert.ok(s.bytesWire < s.bytesRaw, 'LZ4 and zero-page flags shrink the stream');
    assert.ok(s.downtimeMs > 0);

    // The clone waits, suspended, on the target; its vCPU state came along.
    const clone = driverVm(fleet, 'host-b', job.plan!.targetVm);
    assert.equal(clone.state, 'suspended');
    assert.equal(clone.cloneOf, vm.id);
    assert.equal(await clone.memoryHash(), s.sourceHash);
    await assertGuestRunning(fleet, 'host-a', vm.id);

    // Asked to run, the clone's guest continues from the copied state.
    const ran = await c.runVm(clone.id);
    assert.equal(ran.state, 'running');
    await assertGuestRunning(fleet, 'host-b', clone.id);
    assert.equal(await c.destroyVm(clone.id), true);
  });
}

test('pre-copy converges at a low dirty rate: few rounds, final set under the threshold', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'calm', host: 'host-a', memoryMib: 64, workload: { dirtyRate: 500, pattern: 'uniform', seed: 2 } });
  const job = await c.waitJob((await c.clone({ vm: vm.name, targetHost: 'host-b', verify: true })).id);
  assert.equal(job.state, 'completed', job.error);
  const s = job.stats!;
  assert.equal(s.converged, true);
  assert.equal(s.stopReason, 'converged');
  assert.ok(s.rounds <= 3, `${s.rounds} rounds`);
  assert.ok(s.finalPages < job.plan!.thresholdPages);
  assert.equal(s.cloneHash, s.sourceHash);
  assert.equal(job.plan!.predictedConverges, true);
});

test('non-converging pre-copy: refused with a clear error by default, source untouched', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'hot-refuse', host: 'host-a', memoryMib: 8, workload: { dirtyRate: 50_000, pattern: 'uniform', seed: 4 } });
  await assert.rejects(c.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 20 }), (e: unknown) => {
    assert.ok(e instanceof FailedPreconditionError, String(e));
    assert.match(e.message, /not predicted to converge/);
    assert.match(e.message, /dirty rate \d+ pages\/s vs bandwidth \d+ pages\/s/);
    return true;
  });
  await assertGuestRunning(fleet, 'host-a', vm.id);
  const jobs = await c.jobs();
  assert.ok(!jobs.some((j) => j.vm === vm.id), 'a refused clone creates no job');
});

test('non-converging pre-copy with policy warn: rounds stop by the documented rule, the clone is still exact', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'hot-warn', host: 'host-a', memoryMib: 8, workload: { dirtyRate: 50_000, pattern: 'uniform', seed: 5 } });
  const started = await c.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 20, onNonConvergence: 'warn', verify: true });
  assert.match(started.plan!.warning, /not predicted to converge/);
  const job = await c.waitJob(started.id);
  assert.equal(job.state, 'completed', job.error);
  const s = job.stats!;
  assert.equal(s.converged, false);
  assert.match(s.stopReason, /^(stalled|max-rounds)$/);
  assert.ok(s.rounds <= 30);
  assert.equal(s.cloneHash, s.sourceHash);
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

test('events of a clone are kept in the stream and replay to a late subscriber', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'evented', host: 'host-a', memoryMib: 16, workload: { dirtyRate: 5000, pattern: 'hotset', seed: 6 } });
  const job = await c.waitJob((await c.clone({ vm: vm.name, targetHost: 'host-b' })).id);
  assert.equal(job.state, 'completed');
  const types: string[] = [];
  await c.events({ all: true }, (e) => {
    if (e.jobId === job.id) types.push(e.type);
  });
  assert.equal(types[0], 'clone.started');
  assert.ok(types.filter((t) => t === 'clone.round').length >= 1);
  assert.ok(types.includes('clone.switchover'));
  assert.equal(types.at(-1), 'clone.completed');
});

test('cloning a clone that has not run yet leaves it suspended', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'orig', host: 'host-a', memoryMib: 16, workload: { dirtyRate: 2000, pattern: 'uniform', seed: 12 } });
  const first = await c.waitJob((await c.clone({ vm: vm.name, targetHost: 'host-b' })).id);
  assert.equal(first.state, 'completed', first.error);
  const again = await c.waitJob((await c.clone({ vm: first.plan!.targetVm, targetHost: 'host-a', verify: true })).id);
  assert.equal(again.state, 'completed', again.error);
  assert.equal(again.stats!.cloneHash, again.stats!.sourceHash);
  assert.equal(driverVm(fleet, 'host-b', first.plan!.targetVm).state, 'suspended', 'nobody asked the first clone to run');
});

test('a tight bandwidth cap: the probe and the clone follow it', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'capped', host: 'host-a', memoryMib: 4, workload: { dirtyRate: 100, pattern: 'uniform', seed: 13 } });
  const job = await c.waitJob((await c.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 2, verify: true })).id);
  assert.equal(job.state, 'completed', job.error);
  assert.ok(job.plan!.bandwidthBytesPerS < 2.5e6, `probed ${job.plan!.bandwidthBytesPerS} B/s under a 2 MB/s cap`);
  assert.ok(job.stats!.totalMs > 1500, `4 MiB at 2 MB/s took ${job.stats!.totalMs} ms`);
});
