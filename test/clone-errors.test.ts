/**
 * Every failure names what went wrong, and the source VM keeps running:
 * unknown VM, unknown or down target, no room, corrupt frame, oversized message.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
} from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { VM } from '../cli/src/client.js';
import { assertGuestRunning, eventually, startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
let vm: VM;
before(async () => {
  fleet = await startTestFleet();
  vm = await fleet.client.createVm({ name: 'src', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 10_000, pattern: 'uniform', seed: 9 } });
});
after(async () => {
  await fleet.stop();
});

function rejectsWith<T extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => T, re: RegExp): Promise<void> {
  return assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  });
}

test('unknown VM: NOT_FOUND naming the VM', async () => {
  await rejectsWith(fleet.client.clone({ vm: 'no-such-vm' }), NotFoundError, /vm 'no-such-vm' not found/);
});

test('bad input: INVALID_ARGUMENT naming the field', async () => {
  await rejectsWith(fleet.client.clone({ vm: vm.name, maxDowntimeMs: 5 }), InvalidArgumentError, /max downtime \(ms\) must be an integer from 10/);
  await rejectsWith(fleet.client.clone({ vm: vm.name, targetHost: 'host-a' }), InvalidArgumentError, /is the source's host/);
  await rejectsWith(fleet.client.clone({ vm: vm.name, onNonConvergence: 'maybe' }), InvalidArgumentError, /'refuse', 'warn'/);
  await rejectsWith(fleet.client.createVm({ name: 'bad name!', memoryMib: 8 }), InvalidArgumentError, /vm name must be/);
});

test('unknown target host: NOT_FOUND; down target host: UNAVAILABLE', async () => {
  await rejectsWith(fleet.client.clone({ vm: vm.name, targetHost: 'host-z' }), NotFoundError, /target host 'host-z' is not registered/);
  await fleet.startAgent('host-c');
  await fleet.waitHosts(['host-c']);
  await fleet.stopAgent('host-c');
  await eventually(async () => ((await fleet.client.hosts()).find((h) => h.name === 'host-c')?.state === 'down' ? true : undefined), 'host-c down');
  await rejectsWith(fleet.client.clone({ vm: vm.name, targetHost: 'host-c' }), UnavailableError, /target host 'host-c' is down/);
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

test('a target without room: RESOURCE_EXHAUSTED with the numbers', async () => {
  await fleet.startAgent('host-small', { memoryMib: 16 });
  await fleet.waitHosts(['host-small']);
  await rejectsWith(
    fleet.client.clone({ vm: vm.name, targetHost: 'host-small' }),
    ResourceExhaustedError,
    /host 'host-small' lacks room: needs 32 MiB, has 16 MiB free/,
  );
  await fleet.stopAgent('host-small');
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

async function failedClone(fault: string): Promise<{ error: string; errorName: string; targetVm: string }> {
  const started = await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', fault });
  const job = await fleet.client.waitJob(started.id);
  assert.equal(job.state, 'failed');
  return { error: job.error, errorName: job.errorName, targetVm: job.plan!.targetVm };
}

async function assertCloneDiscarded(targetVm: string): Promise<void> {
  await eventually(async () => ((await fleet.client.vms('host-b')).some((v) => v.id === targetVm) ? undefined : true), 'half-built clone removed');
}

test('a corrupt frame during pre-copy fails the job with DATA_LOSS; the half-built clone is discarded', async () => {
  const r = await failedClone('corrupt-frame');
  assert.equal(r.errorName, 'DataCorruptionError');
  assert.match(r.error, /target host-b: page batch of round 0: checksum mismatch/);
  await assertCloneDiscarded(r.targetVm);
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

test('a corrupt frame inside the suspended window: the source is resumed', async () => {
  const r = await failedClone('corrupt-final-frame');
  assert.equal(r.errorName, 'DataCorruptionError');
  assert.match(r.error, /checksum mismatch/);
  await assertCloneDiscarded(r.targetVm);
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

test('an oversized message is refused by the receiver with RESOURCE_EXHAUSTED', async () => {
  const r = await failedClone('oversized-frame');
  assert.equal(r.errorName, 'ResourceExhaustedError');
  assert.match(r.error, /larger than max/);
  await assertCloneDiscarded(r.targetVm);
  await assertGuestRunning(fleet, 'host-a', vm.id);
});

test('fault injection is refused by an agent not started for it', async () => {
  const other = await startTestFleet({ allowFaultInjection: false });
  try {
    const v = await other.client.createVm({ name: 'plain', host: 'host-a', memoryMib: 8, workload: { dirtyRate: 1000, pattern: 'uniform', seed: 1 } });
    await rejectsWith(other.client.clone({ vm: v.name, fault: 'corrupt-frame' }), FailedPreconditionError, /fault injection is disabled/);
    await assertGuestRunning(other, 'host-a', v.id);
  } finally {
    await other.stop();
  }
});

test('after all these failures a clean clone still succeeds', async () => {
  const job = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-b', verify: true })).id);
  assert.equal(job.state, 'completed', job.error);
  assert.equal(job.stats!.cloneHash, job.stats!.sourceHash);
});
