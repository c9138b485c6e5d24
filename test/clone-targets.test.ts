import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CloneTargets } from '../agent/src/clone-targets.js';
import { SimDriver } from '../agent/src/mod.js';
import { silentLogger } from '../shared/src/mod.js';

const spec = { name: 'c', memoryMib: 1, vcpus: 1, workload: { dirtyRate: 0, pattern: 'uniform' as const, seed: 1 } };
const open = (vmId: string) => ({ jobId: 'j1', targetVmId: vmId, pageSize: 4096, pageCount: 256, probe: false });

test('an unclaimed clone is abandoned; a receiving one is not, and completes', async () => {
  const d = new SimDriver();
  const t = new CloneTargets(d, silentLogger(), 100);
  try {
    const idle = await d.create({ ...spec, name: 'idle' }, { incoming: true });
    const busy = await d.create({ ...spec, name: 'busy' }, { incoming: true });
    t.prepare('j1', idle);
    t.prepare('j1', busy);
    t.claim(open(busy.id));
    await sleep(250);
    assert.equal(d.get(idle.id), undefined, 'the unclaimed clone was discarded');
    assert.ok(d.get(busy.id), 'the receiving clone is still there');
    assert.equal(t.complete(busy.id), true);
    assert.equal(t.stateOf(busy.id), 'received');
  } finally {
    t.close();
    await d.close();
  }
});

test('claims are checked: unknown target, another job, a second stream', async () => {
  const d = new SimDriver();
  const t = new CloneTargets(d, silentLogger());
  try {
    const vm = await d.create(spec, { incoming: true });
    t.prepare('j1', vm);
    assert.throws(() => t.claim(open('vm-nope')), /no clone target 'vm-nope'/);
    assert.throws(() => t.claim({ ...open(vm.id), jobId: 'j2' }), /belongs to job j1/);
    t.claim(open(vm.id));
    assert.throws(() => t.claim(open(vm.id)), /already receiving/);
    t.discard(vm.id, 'test');
    assert.equal(t.complete(vm.id), false, 'a discarded clone cannot complete');
  } finally {
    t.close();
    await d.close();
  }
});
