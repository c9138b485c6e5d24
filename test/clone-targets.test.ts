import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloneTargets } from '../agent/src/clone-targets.js';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { SimDriver } from '../agent/src/mod.js';
import { silentLogger, validateVmSpec } from '../shared/src/mod.js';

const spec = validateVmSpec({ name: 'c', memoryMib: 1, vcpus: 1, disks: [{ name: 'disk0', sizeMib: 1, image: '' }] });
const tmp = () => mkdtemp(path.join(os.tmpdir(), 'doppel-targets-'));
const open = (vmId: string) => ({ jobId: 'j1', targetVmId: vmId, pageSize: 4096, pageCount: 256, probe: false });

test('an unclaimed clone is abandoned; a receiving one is not, and completes', async () => {
  const dir = await tmp();
  const d = new SimDriver({ dataDir: dir });
  const t = new CloneTargets(d, silentLogger(), 100);
  try {
    const idle = await d.create({ ...spec, name: 'idle' }, { incoming: true });
    const busy = await d.create({ ...spec, name: 'busy' }, { incoming: true });
    t.prepare('j1', idle, 'host-a');
    t.prepare('j1', busy, 'host-a');
    t.claim(open(busy.id));
    await sleep(250);
    assert.equal(d.get(idle.id), undefined, 'the unclaimed clone was discarded');
    assert.ok(d.get(busy.id), 'the receiving clone is still there');
    assert.equal(t.complete(busy.id), true);
    assert.equal(t.stateOf(busy.id), 'memory', 'memory arrived; the disks come next');
    const disks = { jobId: 'j1', targetVmId: busy.id, disks: [], linked: [] };
    assert.equal(t.claimDisks(disks).id, busy.id);
    assert.throws(() => t.claimDisks(disks), /is disks, not waiting for its disks/);
    assert.equal(t.completeDisks(busy.id), true);
    assert.equal(t.stateOf(busy.id), 'received');
  } finally {
    t.close();
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('claims are checked: unknown target, another job, a second stream', async () => {
  const dir = await tmp();
  const d = new SimDriver({ dataDir: dir });
  const t = new CloneTargets(d, silentLogger());
  try {
    const vm = await d.create(spec, { incoming: true });
    t.prepare('j1', vm, 'host-a');
    assert.throws(() => t.claim(open('vm-nope')), /no clone target 'vm-nope'/);
    assert.throws(() => t.claim({ ...open(vm.id), jobId: 'j2' }), /belongs to job j1/);
    t.claim(open(vm.id));
    assert.throws(() => t.claim(open(vm.id)), /already receiving/);
    t.discard(vm.id, 'test');
    assert.equal(t.complete(vm.id), false, 'a discarded clone cannot complete');
    assert.throws(() => t.claimDisks({ jobId: 'j1', targetVmId: vm.id, disks: [], linked: [] }), /no clone target/);
  } finally {
    t.close();
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});
