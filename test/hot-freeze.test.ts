/**
 * The sim driver's hot freeze (seed 004) on its own: the guest runs on through the freeze, the frozen image does not
 * move, every buffered write is merged back (checked against a journal of them), a full buffer stalls the guest
 * instead of losing writes, and the disks' frozen layers stay as they were while the guest writes a new overlay.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimDriver } from '../agent/src/mod.js';
import { hashDiskView } from '../agent/src/drivers/disk-hash.js';
import type { VmSpec } from '../shared/src/mod.js';
import { CMD, CTRL } from '../agent/src/drivers/sim/layout.js';
import { checkJournal, memoryWords } from './helpers/hot.js';

const root = mkdtempSync(join(tmpdir(), 'doppel-hot-freeze-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

function driver(): SimDriver {
  return new SimDriver({ dataDir: join(root, `host-${n++}`) });
}

function spec(name: string, dirtyRate: number, diskWriteRate = 0): VmSpec {
  return {
    name,
    memoryMib: 16,
    vcpus: 1,
    workload: { dirtyRate, pattern: 'hotset', seed: 11, diskWriteRate },
    disks: [{ name: 'disk0', sizeMib: 16, image: 'base' }],
  };
}

test('a hot freeze keeps the guest running: the frozen image stays still, the writes it buffered are all merged back', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('hot', 40_000, 2_000));
    await vm.run();
    await sleep(100);
    const suspends = vm.suspendCount;
    const writes0 = vm.guestWrites();
    const hot = await vm.hotFreeze({ journal: true });
    assert.deepEqual(
      hot.levels.map((l) => l.level),
      ['io', 'ram', 'vcpu'],
    );
    for (let i = 1; i < hot.levels.length; i++) assert.ok(hot.levels[i]!.frozenAt >= hot.levels[i - 1]!.frozenAt, 'levels freeze slowest first');
    const h1 = await hot.frozenHash();
    const diskHash = await hashDiskView(hot.disks.disks[0]!);
    await sleep(200);
    // The guest ran on: it wrote memory (into the buffer) and disk (into its new overlay).
    assert.equal(vm.state, 'running');
    assert.ok(hot.bufferedWrites() > 1000, `${hot.bufferedWrites()} buffered writes`);
    assert.ok(vm.guestWrites() - writes0 > 1000);
    assert.equal(await hot.frozenHash(), h1, 'the frozen image does not move while the guest writes');
    assert.equal(await hashDiskView(hot.disks.disks[0]!), diskHash, 'the frozen disk does not move either');
    const frozenState = JSON.parse(hot.state.devices.toString()) as { writesLo: number };
    assert.ok(frozenState.writesLo <= writes0 + 1000, 'the vCPU state is the one at the freeze');

    const stats = await hot.unfreeze();
    assert.equal(stats.mergedWrites, stats.bufferedWrites);
    assert.ok(stats.bufferedWrites >= 1000);
    assert.ok(stats.stallMs >= 0 && stats.stallMs < stats.frozenMs, `stall ${stats.stallMs} ms of ${stats.frozenMs} ms frozen`);
    await hot.disks.release('abort');
    await sleep(50);
    await vm.suspend();
    assert.equal(vm.suspendCount, suspends + 1, 'the hot freeze itself never suspended the guest');
    const { lines, exact } = checkJournal(hot.journal()!, memoryWords(vm));
    assert.ok(lines > 100, `${lines} lines written while frozen`);
    assert.ok(exact > 0, 'some lines still hold exactly their merged write');
    assert.notEqual(await vm.memoryHash(), h1, 'after the merge the memory holds the buffered writes');
  } finally {
    await d.close();
  }
});

test('a full buffer stalls the guest instead of dropping writes; the stall is measured', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('full', 40_000));
    await vm.run();
    // Room for 240 writes: the guest fills it within milliseconds and then waits.
    const hot = await vm.hotFreeze({ bufferBytes: 240 * 68, journal: true });
    await sleep(150);
    assert.equal(hot.bufferedWrites(), 240);
    const stats = await hot.unfreeze();
    assert.ok(stats.fullWaits >= 1);
    assert.ok(stats.maxStallMs >= 100, `longest stall ${stats.maxStallMs} ms`);
    assert.ok(stats.mergedWrites >= 240);
    await vm.suspend();
    checkJournal(hot.journal()!, memoryWords(vm));
  } finally {
    await d.close();
  }
});

test('an unfreeze of a parked guest merges on the driver', async () => {
  const d = driver();
  try {
    const a = await d.create(spec('parked', 20_000));
    await a.run();
    const hot = await a.hotFreeze({ journal: true });
    await sleep(50);
    await a.suspend();
    const stats = await hot.unfreeze();
    assert.equal(stats.mergedWrites, stats.bufferedWrites);
    checkJournal(hot.journal()!, memoryWords(a));
    await a.run();
    await sleep(30);
    await a.suspend();

  } finally {
    await d.close();
  }
});

test('a hot freeze needs a running VM and one at a time', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('idle', 1000));
    await vm.suspend();
    await assert.rejects(vm.hotFreeze(), /freezes a running VM/);
    await vm.run();
    const hot = await vm.hotFreeze();
    await assert.rejects(vm.hotFreeze(), /already frozen/);
    await assert.rejects(vm.hotFreeze({ bufferBytes: 10 }), /buffer must be/);
    await hot.unfreeze();
    await hot.disks.release('abort');
    const again = await vm.hotFreeze();
    await again.unfreeze();
    await again.disks.release('abort');
  } finally {
    await d.close();
  }
});

test('a freeze the guest does not take in time is withdrawn: no hang, the guest runs on unfrozen, the next freeze works', async () => {
  const d = driver();
  try {
    const vm = await d.create(spec('stubborn', 20_000, 500));
    await vm.run();
    await sleep(100);
    // Park the guest behind the driver's back (as a descheduled vCPU would be): it cannot take the freeze.
    const ctrl = (vm as unknown as { ctrl: Int32Array }).ctrl;
    Atomics.store(ctrl, CTRL.cmd, CMD.suspend);
    Atomics.notify(ctrl, CTRL.cmd);
    await sleep(50);
    await assert.rejects(vm.hotFreeze(), /did not take the hot freeze/);
    Atomics.store(ctrl, CTRL.cmd, CMD.run);
    Atomics.notify(ctrl, CTRL.cmd);
    await sleep(100);
    // The VM's turns are free, its guest writes on (the stale request was dropped), and a new freeze is clean.
    const w0 = vm.guestWrites();
    await sleep(100);
    assert.ok(vm.guestWrites() > w0);
    const chainBefore = vm.diskChains()[0]!.length;
    const hot = await vm.hotFreeze({ journal: true });
    await sleep(100);
    const stats = await hot.unfreeze();
    assert.equal(stats.mergedWrites, stats.bufferedWrites);
    await hot.disks.release('abort');
    await vm.settleDisks();
    await vm.suspend();
    checkJournal(hot.journal()!, memoryWords(vm));
    assert.ok(vm.diskChains()[0]!.length <= chainBefore, 'the aborted freeze left no extra layer');
  } finally {
    await d.close();
  }
});
