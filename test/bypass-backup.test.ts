/**
 * Time-consistent backups of VMs with volumes that bypass the hypervisor (seed 001): real nats-server, real gRPC,
 * a real (simulated) storage array over HTTP, sim agents. The guest writes a consistency token to its first disk and
 * to its first bypass volume in one step; a restored backup must carry the same token on both.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { assertGuestRunning, codeOf, eventually, startTestFleet } from './helpers/fleet.js';
import { ArrayClient } from '../agent/src/array/client.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet({ array: true });
});
after(async () => {
  await fleet?.stop();
});

let n = 0;
async function createVm(o: { diskWriteRate?: number; bypassWriteRate?: number } = {}) {
  const vm = await fleet.client.createVm({
    name: `bp-${n++}`,
    host: 'host-a',
    memoryMib: 16,
    workload: { dirtyRate: 2000, pattern: 'hotset', seed: 9 + n, diskWriteRate: o.diskWriteRate ?? 400, tokenRate: 300, bypassWriteRate: o.bypassWriteRate ?? 300 },
    disks: [{ name: 'disk0', sizeMib: 128, image: 'base' }],
    bypass: [{ name: 'data', sizeMib: 64 }],
  });
  // Let the guest write both kinds of volume for a while.
  await sleep(400);
  return vm;
}

async function backup(vm: string, o: { incremental?: boolean; skipRevert?: boolean } = {}) {
  const job = await fleet.client.waitJob((await fleet.client.backup({ vm, incremental: o.incremental === true, skipRevert: o.skipRevert === true })).id);
  assert.equal(job.state, 'completed', job.error);
  return job.backup!.result!;
}

async function restoreTokens(backupId: string, host = 'host-b') {
  const job = await fleet.client.waitJob((await fleet.client.restore({ backup: backupId, toHost: host, asName: `r-${n++}` })).id);
  assert.equal(job.state, 'completed', job.error);
  const r = job.restore!;
  assert.equal(r.hasTokens, true);
  return { image: Number(r.imageToken), bypass: Number(r.bypassToken), vmId: r.vmId };
}

test('a bypass-mode backup restores with the same token on the image disk and the bypass volume; without the revert they differ', async () => {
  const vm = await createVm();
  const b = await backup(vm.name);
  assert.equal(b.mode, 'bypass');
  const info = b.bypass!;
  assert.ok(info.t1 < info.t2, `t1 ${info.t1} before t2 ${info.t2}`);
  assert.equal(info.reverted, true);
  assert.ok(Number(info.blocksReverted) > 0, 'the guest wrote image blocks between t1 and t2');
  assert.deepEqual(
    b.disks.map((d) => d.name),
    ['disk0', 'bypass-data'],
  );
  const r = await restoreTokens(b.id);
  assert.ok(r.image > 0, `image token ${r.image}`);
  assert.equal(r.bypass, r.image, 'both volumes carry the token of t1');

  const skipped = await backup(vm.name, { skipRevert: true });
  assert.equal(skipped.bypass!.reverted, false);
  const s = await restoreTokens(skipped.id);
  assert.ok(s.image > s.bypass, `without the revert the image (t2, ${s.image}) is ahead of the bypass volume (t1, ${s.bypass})`);
  await assertGuestRunning(fleet, 'host-a', vm.id);
  // The array keeps only the newest backup's t1 snapshot of the VM, and nothing once the VM is gone.
  const array = new ArrayClient({ url: fleet.array!.url });
  const covering = async () => (await array.listSnapshots()).filter((x) => x.volumes.some((v) => v.name === `${vm.id}-data`));
  assert.deepEqual(
    (await covering()).map((x) => x.id),
    [skipped.bypass!.arraySnapshot],
  );
  for (const id of [r.vmId, s.vmId, vm.id]) await fleet.client.destroyVm(id);
  assert.equal((await covering()).length, 0);
  assert.ok(!(await array.listVolumes()).some((v) => v.name.startsWith(vm.id)), 'the VM\'s bypass volume went with it');
});

test('an incremental bypass-mode backup reads only what changed, on the array and on the host, and restores consistent', async () => {
  // Few writes against 128 + 64 MiB: an incremental has most chunks unchanged.
  const vm = await createVm({ diskWriteRate: 20, bypassWriteRate: 20 });
  const full = await backup(vm.name);
  await sleep(300);
  const inc = await backup(vm.name, { incremental: true });
  assert.equal(inc.kind, 'incremental', inc.fullReason);
  assert.equal(inc.baseId, full.id);
  assert.ok(Number(inc.stats!.bytesRead) < Number(full.stats!.bytesRead), `incremental read ${inc.stats!.bytesRead} of full ${full.stats!.bytesRead}`);
  const r = await restoreTokens(inc.id);
  assert.equal(r.bypass, r.image);
  assert.ok(r.image > 0);
  for (const id of [r.vmId, vm.id]) await fleet.client.destroyVm(id);
});

test('an array that refuses to snapshot, or cannot be reached, fails the backup clearly and leaves nothing in the catalog', async () => {
  const vm = await createVm();
  const before = (await fleet.client.backups(vm.id)).length;
  fleet.array!.setFaults({ refuseSnapshots: true });
  try {
    const job = await fleet.client.waitJob((await fleet.client.backup({ vm: vm.name })).id);
    assert.equal(job.state, 'failed');
    assert.equal(job.errorName, 'FailedPreconditionError');
    assert.match(job.error, /refuses to snapshot/);
  } finally {
    fleet.array!.setFaults({ refuseSnapshots: false });
  }
  fleet.array!.setFaults({ unavailable: true });
  try {
    const job = await fleet.client.waitJob((await fleet.client.backup({ vm: vm.name })).id);
    assert.equal(job.state, 'failed');
    assert.match(job.errorName, /UnavailableError|DeadlineExceededError/);
  } finally {
    fleet.array!.setFaults({ unavailable: false });
  }
  assert.equal((await fleet.client.backups(vm.id)).length, before, 'no partial backup is listed');
  await assertGuestRunning(fleet, 'host-a', vm.id);
  // And the VM backs up fine once the array is back.
  const ok = await backup(vm.name);
  assert.equal(ok.mode, 'bypass');
  await fleet.client.destroyVm(vm.id);
});

test('bypass volumes need an array; skipRevert is refused for a VM without them', async () => {
  const plain = await fleet.client.createVm({ name: `plain-${n++}`, host: 'host-a', memoryMib: 16 });
  assert.equal(await codeOf(fleet.client.backup({ vm: plain.name, skipRevert: true })), 'INVALID_ARGUMENT');
  await fleet.client.destroyVm(plain.id);
  await eventually(async () => ((await fleet.client.vms('host-a')).some((v) => v.id === plain.id) ? undefined : true), 'the VM to go');
});
