import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimDriver } from '../agent/src/mod.js';
import type { VmSpec, WorkloadPattern } from '../shared/src/mod.js';
import { PAGE_SIZE, isZeroPage } from '../shared/src/mod.js';

const root = mkdtempSync(join(tmpdir(), 'doppel-sim-driver-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

/** A driver on a fresh data directory of its own. */
function driver(): SimDriver {
  return new SimDriver({ dataDir: join(root, `host-${dirs++}`) });
}

function spec(name: string, dirtyRate: number, pattern: WorkloadPattern, memoryMib = 16): VmSpec {
  return { name, memoryMib, vcpus: 1, workload: { dirtyRate, pattern, seed: 3, diskWriteRate: 0 }, disks: [] };
}

test('guest memory holds zero, compressible and random pages', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('mix', 0, 'uniform', 32));
    const pages = vm.pages();
    let zero = 0;
    for (let i = 0; i < pages.pageCount; i++) if (isZeroPage(pages.page(i))) zero++;
    const share = zero / pages.pageCount;
    assert.ok(share > 0.25 && share < 0.45, `zero share ${share}`);
  } finally {
    await d.close();
  }
});

test('the workload writes at its rate and sets a dirty bit for each page it writes', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('w', 20_000, 'uniform'));
    const pages = vm.pages();
    pages.clearDirtyLog();
    const w0 = vm.guestWrites();
    await sleep(500);
    const writes = vm.guestWrites() - w0;
    assert.ok(writes > 5_000 && writes < 15_000, `${writes} writes in 0.5 s at 20000/s`);
    assert.ok(pages.countDirty() > 1000);
    const rate = await vm.measureDirtyRate(200);
    assert.ok(rate > 5_000, `measured dirty rate ${rate}`);
  } finally {
    await d.close();
  }
});

test('suspend is a handshake: once it resolves no page changes; resume restarts the guest', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('s', 50_000, 'uniform'));
    await sleep(100);
    await vm.suspend();
    assert.equal(vm.state, 'suspended');
    const h1 = await vm.memoryHash();
    const w1 = vm.guestWrites();
    await sleep(150);
    assert.equal(vm.guestWrites(), w1);
    assert.equal(await vm.memoryHash(), h1);
    await vm.run();
    await sleep(100);
    assert.ok(vm.guestWrites() > w1);
  } finally {
    await d.close();
  }
});

test('vCPU and device state change as the guest runs, and load into another VM', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('st', 10_000, 'uniform'));
    const a = JSON.parse(vm.saveState().devices.toString()) as Record<string, number>;
    await sleep(200);
    await vm.suspend();
    const saved = vm.saveState();
    const b = JSON.parse(saved.devices.toString()) as Record<string, number>;
    assert.ok(b.timerTicks! > a.timerTicks!, 'timer ticks advance');
    assert.notEqual(b.writesLo, a.writesLo);
    const target = await d.create(spec('st-target', 10_000, 'uniform'), { incoming: true });
    target.loadState(saved);
    assert.deepEqual(target.saveState(), saved);
    assert.throws(() => target.loadState({ vcpu: Buffer.from('{}'), devices: saved.devices }), /vCPU state field 'rip'/);
  } finally {
    await d.close();
  }
});

test('patterns: hotset concentrates writes, sequential walks pages in order', async () => {
  const d = driver();
  try {
    const hot = await d.create(spec('hot', 20_000, 'hotset', 64));
    const pages = hot.pages();
    pages.clearDirtyLog();
    await sleep(300);
    await hot.suspend();
    // 10% of memory takes 90% of writes: far fewer distinct pages than writes.
    const distinct = pages.countDirty();
    assert.ok(distinct < pages.pageCount * 0.35, `hotset dirtied ${distinct} of ${pages.pageCount}`);

    const seq = await d.create(spec('seq', 5_000, 'sequential', 64));
    const sp = seq.pages();
    sp.clearDirtyLog();
    await sleep(200);
    await seq.suspend();
    let first = -1;
    let last = -1;
    let n = 0;
    for (let w = 0; w < sp.dirtyWords; w++) {
      let bits = sp.takeDirtyWord(w);
      while (bits) {
        const low = bits & -bits;
        const i = w * 32 + (31 - Math.clz32(low));
        bits ^= low;
        if (first < 0) first = i;
        last = i;
        n++;
      }
    }
    assert.ok(n > 100, `${n} dirty pages`);
    assert.equal(last - first + 1, n, 'sequential writes dirty one contiguous run');
  } finally {
    await d.close();
  }
});

test('the page view is PAGE_SIZE bytes of guest memory', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('pv', 0, 'uniform', 1), { incoming: true });
    const p = vm.pages();
    p.writePage(5, Buffer.alloc(PAGE_SIZE, 9));
    assert.equal(p.page(5).length, PAGE_SIZE);
    assert.equal(p.page(5)[100], 9);
    p.zeroPage(5);
    assert.ok(isZeroPage(p.page(5)));
  } finally {
    await d.close();
  }
});
