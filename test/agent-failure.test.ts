/**
 * A source agent that goes away mid-clone: a clean stop cancels its clone at
 * once (source resumed, job failed, clone discarded); a killed host's job is
 * failed by the coordinator instead of staying "running" forever.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { eventually, startTestFleet } from './helpers/fleet.js';

test('stopping the source agent cancels its running clone promptly', async () => {
  const fleet = await startTestFleet();
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'leaving', host: 'host-a', memoryMib: 64, workload: { dirtyRate: 1000, pattern: 'uniform', seed: 1 } });
    const job = await c.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 10 });
    await eventually(async () => ((await c.job(job.id)).state === 'running' ? true : undefined), 'job running');
    const t0 = Date.now();
    await fleet.stopAgent('host-a');
    assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms with a 6 s clone running`);
    const failed = await c.waitJob(job.id, undefined, 15_000);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.errorName, 'AbortedError');
    assert.match(failed.error, /the source agent is stopping/);
    await eventually(async () => ((await c.vms('host-b')).length === 0 ? true : undefined), 'clone discarded on host-b');
  } finally {
    await fleet.stop();
  }
});

test('a source host that dies mid-clone: the coordinator fails the job', async () => {
  const fleet = await LocalFleet.start({ mode: 'process', heartbeatMs: 300, agentMemoryMib: 1024 });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'doomed', host: 'host-a', memoryMib: 64, workload: { dirtyRate: 1000, pattern: 'uniform', seed: 1 } });
    const job = await c.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 10 });
    await sleep(500);
    await fleet.killAgent('host-a');
    const failed = await c.waitJob(job.id, undefined, 20_000);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.errorName, 'UnavailableError');
    assert.match(failed.error, /source host 'host-a' went down during the job/);
    await eventually(async () => ((await c.vms('host-b')).length === 0 ? true : undefined), 'half-built clone discarded on host-b', 20_000);
  } finally {
    await fleet.stop();
  }
});
