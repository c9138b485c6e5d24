import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SimDriver } from '../agent/src/mod.js';
import { hashDiskView } from '../agent/src/drivers/disk-hash.js';
import type { DiskView, DriverVm } from '../agent/src/drivers/driver.js';
import { Datastore } from '../agent/src/drivers/sim/datastore.js';
import { DiskWorkload } from '../agent/src/drivers/sim/guest-workload.js';
import { MS, PATTERN_CODE } from '../agent/src/drivers/sim/layout.js';
import { seedState } from '../agent/src/drivers/sim/prng.js';
import { DISK_BLOCK_SIZE, type DiskSpec, type VmSpec, type WorkloadPattern } from '../shared/src/mod.js';

const root = mkdtempSync(join(tmpdir(), 'doppel-sim-disk-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A fresh host directory (and, unless given, its own datastore). */
function host(datastoreDir?: string): { dataDir: string; datastoreDir?: string } {
  return { dataDir: join(root, `host-${n++}`), ...(datastoreDir ? { datastoreDir } : {}) };
}

function spec(name: string, o: { diskWriteRate?: number; pattern?: WorkloadPattern; disks?: DiskSpec[] } = {}): VmSpec {
  return {
    name,
    memoryMib: 4,
    vcpus: 1,
    workload: { dirtyRate: 0, pattern: o.pattern ?? 'uniform', seed: 7, diskWriteRate: o.diskWriteRate ?? 0 },
    disks: o.disks ?? [{ name: 'disk0', sizeMib: 16, image: 'base' }],
  };
}

function bitCount(bitmap: Uint32Array): number {
  let c = 0;
  for (let v of bitmap) {
    while (v !== 0) {
      v &= v - 1;
      c++;
    }
  }
  return c;
}

function bit(bitmap: Uint32Array, b: number): boolean {
  return ((bitmap[b >>> 5]! >>> (b & 31)) & 1) === 1;
}

const ZERO_SECTOR = Buffer.alloc(4096);

function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += 4096) if (!b.subarray(o, o + 4096).equals(ZERO_SECTOR.subarray(0, Math.min(4096, b.length - o)))) return false;
  return true;
}

async function readAll(view: DiskView): Promise<Buffer> {
  const buf = Buffer.alloc(view.sizeBytes);
  await view.read(0, view.blockCount, buf);
  return buf;
}

/**
 * The sequential workload writes 4 KiB sector i with write number i + 1 (and its block) in the first 8 bytes.
 * Like QEMU's migration test, a consistent disk is a prefix of stamped sectors and zeros after (on a blank
 * disk): no write lost, none misplaced. Checks that, and that the prefix has between `min` and `max` writes.
 */
async function checkSequential(view: DiskView, min: number, max = min): Promise<void> {
  const buf = await readAll(view);
  const sectors = buf.length / 4096;
  assert.ok(max < sectors, 'the test disk is large enough not to wrap');
  let stamped = 0;
  while (stamped < sectors && buf.readUInt32LE(stamped * 4096) === stamped + 1) {
    assert.equal(buf.readUInt32LE(stamped * 4096 + 4), Math.floor(stamped / 16), `sector ${stamped} names another block`);
    stamped++;
  }
  assert.ok(stamped >= min && stamped <= max, `${stamped} writes on disk, expected ${min}..${max}`);
  for (let i = stamped; i < sectors; i++) assert.ok(isZero(buf.subarray(i * 4096, (i + 1) * 4096)), `data in sector ${i}, after the last write`);
}

/**
 * A VM made as a restore target (blank disks, memory from its seed) has on its disks exactly the replay of its
 * guest's writes: checks that, block by block, on a suspended VM with two disks. Returns each disk's hash.
 */
async function checkReplay(vm: DriverVm & { liveDiskView(disk: number): DiskView }, disks: readonly DiskSpec[], pattern: WorkloadPattern): Promise<string[]> {
  const writes = vm.diskWrites();
  const ms = new Uint32Array(MS.length);
  ms.set(seedState(vm.spec.workload.seed), MS.prng0);
  const blocks = disks.map((x) => x.sizeMib * 16);
  const load = new DiskWorkload(ms, PATTERN_CODE[pattern], blocks[0]! + blocks[1]!, DISK_BLOCK_SIZE, vm.spec.workload.seed);
  const expected = disks.map((x) => Buffer.alloc(x.sizeMib << 20));
  for (let k = 1; k <= writes; k++) {
    const { block, offset } = load.next();
    const disk = block < blocks[0]! ? 0 : 1;
    const b = disk === 0 ? block : block - blocks[0]!;
    load.data(k, block).copy(expected[disk]!, b * DISK_BLOCK_SIZE + offset);
  }
  const hashes: string[] = [];
  for (let disk = 0; disk < 2; disk++) {
    const view = vm.liveDiskView(disk);
    const got = await readAll(view);
    for (let b = 0; b < blocks[disk]!; b++) {
      const o = b * DISK_BLOCK_SIZE;
      assert.ok(got.subarray(o, o + DISK_BLOCK_SIZE).equals(expected[disk]!.subarray(o, o + DISK_BLOCK_SIZE)), `${pattern}: disk ${disk} block ${b} differs from the replay`);
    }
    hashes.push(await hashDiskView(view));
  }
  return hashes;
}

test('disks of one image are identical, realistic, and quick to make; a blank disk is all holes', async () => {
  const a = new SimDriver(host());
  const b = new SimDriver(host());
  try {
    const disks = [
      { name: 'sys', sizeMib: 64, image: 'debian' },
      { name: 'data', sizeMib: 8, image: '' },
    ];
    const t0 = performance.now();
    const v1 = await a.create(spec('one', { disks }));
    const ms = performance.now() - t0;
    const v2 = await b.create({ ...spec('two', { disks }), workload: { dirtyRate: 0, pattern: 'hotset', seed: 99, diskWriteRate: 0 } });
    const v3 = await b.create(spec('other', { disks: [{ name: 'sys', sizeMib: 64, image: 'ubuntu' }] }));
    const [s1, s2, s3] = await Promise.all([v1.snapshotDisks(), v2.snapshotDisks(), v3.snapshotDisks()]);
    const sys = s1!.disks[0]!;
    assert.equal(await hashDiskView(sys), await hashDiskView(s2!.disks[0]!), 'same image, same disk, whatever the VM seed');
    assert.notEqual(await hashDiskView(sys), await hashDiskView(s3!.disks[0]!));
    assert.equal(sys.blockCount, 1024);
    assert.equal(sys.blockSize, DISK_BLOCK_SIZE);
    const buf = await readAll(sys);
    let allocated = 0;
    let zero = 0;
    let text = 0;
    for (let blk = 0; blk < sys.blockCount; blk++) {
      if (!sys.isAllocated(blk)) continue;
      allocated++;
      const data = buf.subarray(blk * DISK_BLOCK_SIZE, (blk + 1) * DISK_BLOCK_SIZE);
      if (isZero(data)) zero++;
      else if (data.subarray(0, 64).every((x) => x === 10 || (x >= 32 && x < 127))) text++;
    }
    assert.ok(allocated > 0.5 * 1024 && allocated < 0.7 * 1024, `${allocated} of 1024 blocks allocated`);
    assert.ok(zero > 0.05 * allocated && text > 0.3 * allocated && allocated - zero - text > 0.15 * allocated, `zero ${zero} text ${text} of ${allocated}`);
    const blank = s1!.disks[1]!;
    assert.equal([...Array(blank.blockCount).keys()].filter((x) => blank.isAllocated(x)).length, 0);
    assert.ok(isZero(await readAll(blank)));
    assert.ok(ms < 1500, `a VM with a 64 MiB image disk took ${ms.toFixed(0)} ms to create`);
    await Promise.all([s1!.release('commit'), s2!.release('commit'), s3!.release('commit')]);
  } finally {
    await a.close();
    await b.close();
  }
});

test('the guest writes its disks at the set rate and sets a change bit for each block it writes', async () => {
  const d = new SimDriver(host());
  try {
    const vm = await d.create(spec('w', { diskWriteRate: 2000, disks: [{ name: 'a', sizeMib: 16, image: '' }, { name: 'b', sizeMib: 16, image: '' }] }));
    const first = await vm.snapshotDisks({ checkpoint: 'c0' });
    await first.release('commit');
    const w0 = vm.diskWrites();
    await sleep(500);
    const writes = vm.diskWrites() - w0;
    assert.ok(writes > 600 && writes < 1400, `${writes} disk writes in 0.5 s at 2000/s`);
    const snap = await vm.snapshotDisks({ checkpoint: 'c1' });
    const changed = snap.changes.map((c) => bitCount(c!.bitmap));
    assert.equal(snap.changes[0]!.since, 'c0');
    assert.ok(changed[0]! > 50 && changed[1]! > 50, `changed blocks per disk: ${changed.join(', ')}`);
    // Every block that holds data on a blank disk was written by the guest, so its change bit is set.
    for (let disk = 0; disk < 2; disk++) {
      const view = snap.disks[disk]!;
      const bits = snap.changes[disk]!.bitmap;
      const old = first.disks[disk]!;
      for (let blk = 0; blk < view.blockCount; blk++) if (view.isAllocated(blk) && !old.isAllocated(blk)) assert.ok(bit(bits, blk), `block ${blk} written but unmarked`);
    }
    await snap.release('commit');
  } finally {
    await d.close();
  }
});

test('a snapshot of a running VM stays byte-identical while the guest writes on; release merges the overlay without losing a write', async () => {
  const d = new SimDriver(host());
  try {
    const vm = await d.create(spec('s', { diskWriteRate: 10_000, pattern: 'sequential', disks: [{ name: 'disk0', sizeMib: 128, image: '' }] }));
    await sleep(150);
    const before = vm.diskWrites();
    const t0 = performance.now();
    const snap = await vm.snapshotDisks();
    const freezeMs = performance.now() - t0;
    const w0 = vm.diskWrites();
    assert.equal(vm.diskChains()[0]!.length, 2, 'an overlay on the frozen layer');
    const h1 = await hashDiskView(snap.disks[0]!);
    await sleep(300);
    assert.ok(vm.diskWrites() > w0 + 1000, 'the guest kept writing');
    assert.equal(await hashDiskView(snap.disks[0]!), h1, 'the frozen view did not change');
    await checkSequential(snap.disks[0]!, before, w0);
    await snap.release('commit');
    await assert.rejects(snap.disks[0]!.read(0, 1, Buffer.alloc(DISK_BLOCK_SIZE)), /released/);
    // The worker merges between writes: the guest never stops, and its writes during the merge all land.
    const w1 = vm.diskWrites();
    await vm.settleDisks();
    assert.equal(vm.diskChains()[0]!.length, 1, 'the overlay is merged back');
    await sleep(100);
    await vm.suspend();
    assert.ok(vm.diskWrites() > w1, 'the guest wrote during the merge');
    await checkSequential(vm.liveDiskView(0), vm.diskWrites());
    assert.ok(freezeMs < 200, `freeze took ${freezeMs.toFixed(1)} ms`);
  } finally {
    await d.close();
  }
});

test('a merge interrupted by a suspend finishes on the driver; hot-set writes during a merge are all kept', async () => {
  const d = new SimDriver(host());
  try {
    const vm = await d.create(spec('h', { diskWriteRate: 20_000, pattern: 'hotset', disks: [{ name: 'disk0', sizeMib: 32, image: 'base' }] }));
    for (let round = 0; round < 5; round++) {
      const snap = await vm.snapshotDisks();
      await sleep(100);
      await snap.release('abort');
      await sleep(round);
      await vm.suspend();
      const expected = await hashDiskView(vm.liveDiskView(0));
      await vm.settleDisks();
      assert.equal(vm.diskChains()[0]!.length, 1);
      assert.equal(await hashDiskView(vm.liveDiskView(0)), expected, `round ${round}`);
      await vm.run();
    }
  } finally {
    await d.close();
  }
});

test('every guest write lands, through snapshots and merges in the worker or the driver: the disks equal a replay of the writes', async () => {
  for (const pattern of ['hotset', 'uniform'] as const) {
    const d = new SimDriver(host());
    try {
      const disks = [
        { name: 'a', sizeMib: 4, image: '' },
        { name: 'b', sizeMib: 8, image: '' },
      ];
      // A restore target boots from its seed but starts with blank disks: a known starting point for the replay.
      const vm = await d.create(spec(`r-${pattern}`, { diskWriteRate: 20_000, pattern, disks }), { restore: true });
      await vm.run();
      for (let round = 0; round < 6; round++) {
        const snap = await vm.snapshotDisks({ checkpoint: `b${round}`, shareable: round === 3 });
        await sleep(50);
        await snap.release('commit');
        if (round % 2 === 0) {
          await vm.settleDisks();
        } else {
          // Parked in the middle of a merge: the driver finishes it.
          await vm.suspend();
          await vm.settleDisks();
          await vm.run();
        }
        // Round 3's snapshot was shareable: no other VM linked its base, so the release takes it back and folds it too.
        assert.equal(vm.diskChains()[0]!.length, 1, `round ${round}`);
        await sleep(30);
      }
      await vm.suspend();
      const writes = vm.diskWrites();
      assert.ok(writes > 3000, `${writes} writes`);
      await checkReplay(vm, disks, pattern);
    } finally {
      await d.close();
    }
  }
});

test('checkpoints: commit moves the base, abort keeps the changes, invalidate makes the next one full', async () => {
  const d = new SimDriver(host());
  try {
    const vm = await d.create(spec('c', { diskWriteRate: 1000, disks: [{ name: 'disk0', sizeMib: 4, image: 'base' }] }));
    await sleep(100);
    const s1 = await vm.snapshotDisks({ checkpoint: 'b1' });
    assert.equal(s1.changes[0]!.since, '', 'a new disk tracks since its creation');
    assert.deepEqual(s1.chains, []);
    const before = await readAll(s1.disks[0]!);
    await assert.rejects(vm.snapshotDisks({ checkpoint: 'x' }), /still open/);
    await s1.release('commit');
    await sleep(150);
    const s2 = await vm.snapshotDisks({ checkpoint: 'b2' });
    const c2 = s2.changes[0]!;
    assert.equal(c2.since, 'b1');
    assert.ok(bitCount(c2.bitmap) > 10);
    // Every block whose content changed since b1 is marked.
    const now = await readAll(s2.disks[0]!);
    for (let blk = 0; blk < s2.disks[0]!.blockCount; blk++) {
      const o = blk * DISK_BLOCK_SIZE;
      if (!now.subarray(o, o + DISK_BLOCK_SIZE).equals(before.subarray(o, o + DISK_BLOCK_SIZE))) assert.ok(bit(c2.bitmap, blk), `block ${blk}`);
    }
    await s2.release('abort');
    const s3 = await vm.snapshotDisks({ checkpoint: 'b3' });
    const c3 = s3.changes[0]!;
    assert.equal(c3.since, 'b1', 'an aborted checkpoint is as if it never happened');
    for (let blk = 0; blk < s3.disks[0]!.blockCount; blk++) if (bit(c2.bitmap, blk)) assert.ok(bit(c3.bitmap, blk));
    await s3.release('invalidate');
    const s4 = await vm.snapshotDisks({ checkpoint: 'b4' });
    assert.equal(s4.changes[0], null, 'tracking was dropped: the next backup is full');
    await s4.release('commit');
    const s5 = await vm.snapshotDisks({ checkpoint: 'b5' });
    assert.equal(s5.changes[0]!.since, 'b4');
    const s6 = await vm.snapshotDisks();
    assert.deepEqual(s6.changes, [], 'no checkpoint asked, no changes');
    await s6.release('commit');
    await s5.release('commit');
  } finally {
    await d.close();
  }
});

test('VMs and change tracking survive a clean restart; after a crash tracking is lost and half-made VMs go', async () => {
  const h = host();
  const d1 = new SimDriver(h);
  const vm = await d1.create(spec('p', { diskWriteRate: 1000 }));
  const s1 = await vm.snapshotDisks({ checkpoint: 'c1' });
  await s1.release('commit');
  await vm.run({ isolateNetwork: true });
  await sleep(100);
  await vm.suspend();
  const hash = await hashDiskView(vm.liveDiskView(0));
  const incoming = await d1.create(spec('half'), { incoming: true });
  const halfLayers = incoming.diskChains().flat();
  await d1.close();

  const d2 = new SimDriver(h);
  assert.equal(d2.datastore.id, d1.datastore.id);
  const loaded = await d2.load();
  assert.deepEqual(
    loaded.map((v) => v.id),
    [vm.id],
    'the never-run incoming VM is gone',
  );
  for (const layer of halfLayers) assert.ok(!existsSync(join(h.dataDir, 'datastore', 'layers', layer)), `layer ${layer} deleted`);
  const back = loaded[0]!;
  assert.equal(back.state, 'suspended');
  assert.equal(back.info('h').networkIsolated, true);
  assert.equal(await hashDiskView(back.liveDiskView(0)), hash, 'the disk is as it was');
  const s2 = await back.snapshotDisks({ checkpoint: 'c2' });
  assert.equal(s2.changes[0]!.since, 'c1', 'tracking survived the clean stop');
  assert.ok(bitCount(s2.changes[0]!.bitmap) > 10);
  await s2.release('commit');
  await back.run();
  await sleep(100);
  await d2.crash();

  const d3 = new SimDriver(h);
  const [again] = await d3.load();
  try {
    const s3 = await again!.snapshotDisks({ checkpoint: 'c3' });
    assert.equal(s3.changes[0], null, 'after a crash tracking is lost: the next backup is full');
    await s3.release('commit');
    const s4 = await again!.snapshotDisks({ checkpoint: 'c4' });
    assert.equal(s4.changes[0]!.since, 'c3');
    await s4.release('commit');
  } finally {
    await d3.close();
  }
});

test('a crash in the middle of a merge loses no completed write', async () => {
  const h = host();
  for (let round = 0; round < 3; round++) {
    const d = new SimDriver(h);
    const [old] = await d.load();
    if (old) await d.destroy(old.id);
    const vm = await d.create(spec(`m${round}`, { diskWriteRate: 20_000, pattern: 'sequential', disks: [{ name: 'disk0', sizeMib: 64, image: '' }] }));
    await sleep(50);
    const snap = await vm.snapshotDisks();
    await sleep(400);
    await snap.release('commit');
    await sleep(round * 3);
    await d.crash();
    const writes = vm.diskWrites();
    const d2 = new SimDriver(h);
    const [back] = await d2.load();
    assert.ok(back);
    // A write cut short by the crash may or may not be there.
    await checkSequential(back.liveDiskView(0), writes, writes + 1);
    await d2.close();
  }
});

test('a linked clone on a shared datastore reads the base plus its own writes; the base lives while it is used', async () => {
  const shared = join(root, `shared-${n++}`);
  const a = new SimDriver(host(shared));
  const b = new SimDriver(host(shared));
  try {
    assert.equal(a.datastore.id, b.datastore.id);
    assert.notEqual(a.datastore.id, new SimDriver(host()).datastore.id);
    const src = await a.create(spec('src', { diskWriteRate: 2000 }));
    await sleep(100);
    const snap = await src.snapshotDisks({ shareable: true });
    const base = snap.chains[0]!;
    assert.deepEqual(base, src.diskChains()[0]!.slice(0, -1));
    const baseHash = await hashDiskView(snap.disks[0]!);
    const clone = await b.create(spec('clone', { diskWriteRate: 2000 }), { incoming: true, cloneOf: src.id, linkedDisks: snap.chains });
    assert.deepEqual(clone.diskChains()[0]!.slice(0, -1), base);
    assert.equal(await hashDiskView(clone.liveDiskView(0)), baseHash);
    // The clone's own writes go to its overlay; the base is untouched.
    await clone.writeDiskBlocks(0, 3, Buffer.alloc(DISK_BLOCK_SIZE, 0x5a));
    const mine = Buffer.alloc(DISK_BLOCK_SIZE);
    await clone.liveDiskView(0).read(3, 1, mine);
    assert.equal(mine[100], 0x5a);
    await clone.run();
    await sleep(100);
    await clone.suspend();
    assert.equal(await hashDiskView(snap.disks[0]!), baseHash);
    await snap.release('commit');
    assert.equal(src.diskChains()[0]!.length, base.length + 1, 'a shareable snapshot leaves its layers as a permanent base');
    const srcOwn = src.diskChains()[0]!.at(-1)!;
    await a.destroy(src.id);
    const layerDir = (id: string) => join(shared, 'layers', id);
    assert.ok(!existsSync(layerDir(srcOwn)), "the source's own layer is gone");
    for (const id of base) assert.ok(existsSync(layerDir(id)), `base layer ${id} outlives the source`);
    // An incoming VM made with blank disks can link them afterwards.
    const second = await a.create(spec('second'), { incoming: true });
    const blank = second.diskChains()[0]![0]!;
    await second.linkDisks([base]);
    assert.ok(!existsSync(layerDir(blank)), 'the blank layer it replaced is gone');
    assert.equal(await hashDiskView(second.liveDiskView(0)), baseHash, 'a second clone sees the base unchanged');
    await a.destroy(second.id);
    for (const id of base) assert.ok(existsSync(layerDir(id)));
    await b.destroy(clone.id);
    for (const id of base) assert.ok(!existsSync(layerDir(id)), `base layer ${id} went with its last user`);
    await assert.rejects(b.create(spec('late'), { incoming: true, linkedDisks: [base] }), /not in datastore/);
  } finally {
    await a.close();
    await b.close();
  }
});

test('blocks written into an incoming VM reproduce the source snapshot; zeros cost no data', async () => {
  const d = new SimDriver(host());
  try {
    const src = await d.create(spec('src', { diskWriteRate: 3000, disks: [{ name: 'disk0', sizeMib: 32, image: 'base' }] }));
    await sleep(100);
    const snap = await src.snapshotDisks({ checkpoint: 'full' });
    const view = snap.disks[0]!;
    const target = await d.create(spec('dst', { disks: src.spec.disks }), { incoming: true, cloneOf: src.id });
    const buf = Buffer.alloc(64 * DISK_BLOCK_SIZE);
    for (let b = 0; b < view.blockCount; b += 64) {
      await view.read(b, 64, buf);
      await target.writeDiskBlocks(0, b, buf);
    }
    target.inheritChanges(0, snap.changes[0]!);
    const want = await hashDiskView(view);
    assert.equal(await hashDiskView(target.liveDiskView(0)), want);
    const t = target.liveDiskView(0);
    for (let b = 0; b < view.blockCount; b++) if (!view.isAllocated(b)) assert.equal(t.isAllocated(b), false, `block ${b}`);
    await snap.release('commit');
    await target.run();
    await target.suspend();
    const ts = await target.snapshotDisks({ checkpoint: 'next' });
    assert.equal(ts.changes[0]!.since, '', "the clone carries the source's base");
    await ts.release('abort');
    target.inheritChanges(0, null);
    const lost = await target.snapshotDisks({ checkpoint: 'n2' });
    assert.equal(lost.changes[0], null);
    await lost.release('commit');
    // Zeros over data: the block reads as zeros and counts as unallocated. Like any change, it is tracked.
    await src.suspend();
    const first = [...Array(view.blockCount).keys()].find((b) => src.liveDiskView(0).isAllocated(b))!;
    const c0 = await src.snapshotDisks({ checkpoint: 'before-zero' });
    await c0.release('commit');
    await src.writeDiskBlocks(0, first, Buffer.alloc(DISK_BLOCK_SIZE));
    assert.equal(src.liveDiskView(0).isAllocated(first), false);
    const z = Buffer.alloc(DISK_BLOCK_SIZE, 1);
    await src.liveDiskView(0).read(first, 1, z);
    assert.ok(z.every((x) => x === 0));
    const c1 = await src.snapshotDisks({ checkpoint: 'after-zero' });
    assert.deepEqual([...Array(view.blockCount).keys()].filter((b) => bit(c1.changes[0]!.bitmap, b)), [first], 'only the zeroed block changed');
    await c1.release('commit');
    await src.run();
    await assert.rejects(src.writeDiskBlocks(0, 0, Buffer.alloc(DISK_BLOCK_SIZE)), /running/);
    await assert.rejects(target.writeDiskBlocks(0, 511, Buffer.alloc(2 * DISK_BLOCK_SIZE)), /do not fit/);
    await assert.rejects(target.writeDiskBlocks(0, 0, Buffer.alloc(100)), /do not fit/);
  } finally {
    await d.close();
  }
});

test('an isolated NIC stops counting; frozen views read fast', async () => {
  const d = new SimDriver(host());
  try {
    const vm = await d.create({ ...spec('n'), workload: { dirtyRate: 5000, pattern: 'uniform', seed: 1, diskWriteRate: 0 } });
    await vm.suspend();
    await vm.run({ isolateNetwork: true });
    assert.equal(vm.networkIsolated, true);
    const nic = (): string => {
      const dev = JSON.parse(vm.saveState().devices.toString()) as Record<string, number>;
      return `${dev.nicRx}/${dev.nicTx}`;
    };
    const n0 = nic();
    await sleep(100);
    assert.equal(nic(), n0);
    assert.ok(vm.guestWrites() > 0);

    const big = await d.create(spec('big', { disks: [{ name: 'holes', sizeMib: 1024, image: '' }, { name: 'data', sizeMib: 128, image: 'base' }] }));
    const snap = await big.snapshotDisks();
    const rate = async (view: DiskView) => {
      const buf = Buffer.alloc(256 * DISK_BLOCK_SIZE);
      const t0 = performance.now();
      for (let b = 0; b < view.blockCount; b += 256) await view.read(b, Math.min(256, view.blockCount - b), buf);
      return view.sizeBytes / ((performance.now() - t0) / 1000);
    };
    const holes = await rate(snap.disks[0]!);
    await rate(snap.disks[1]!);
    const data = await rate(snap.disks[1]!);
    assert.ok(holes > 2e9, `holes read at ${(holes / 1e9).toFixed(2)} GB/s`);
    assert.ok(data > 3e8, `data read at ${(data / 1e9).toFixed(2)} GB/s`);
    console.log(`frozen view reads: holes ${(holes / 1e9).toFixed(1)} GB/s, data ${(data / 1e9).toFixed(2)} GB/s`);
    await snap.release('commit');
  } finally {
    await d.close();
  }
});

test('shared bases fold back once no linked clone uses them: the chain stays bounded and no guest write is lost', async () => {
  const shared = join(root, `shared-${n++}`);
  const a = new SimDriver(host(shared));
  const b = new SimDriver(host(shared));
  try {
    const disks = [
      { name: 'a', sizeMib: 4, image: '' },
      { name: 'b', sizeMib: 8, image: '' },
    ];
    // Blank disks and a seeded guest: the disks must equal a replay of its writes at the end.
    const src = await a.create(spec('daily', { diskWriteRate: 20_000, pattern: 'hotset', disks }), { restore: true });
    await src.run();
    const lengths = () => src.diskChains().map((c) => c.length);
    // Daily backups through linked clones: before the fix the chain grew by one layer per snapshot, forever.
    for (let round = 0; round < 6; round++) {
      await sleep(30);
      await src.settleDisks();
      assert.deepEqual(lengths(), [1, 1], `round ${round}: the previous base was folded back`);
      const snap = await src.snapshotDisks({ shareable: true, checkpoint: `b${round}` });
      assert.deepEqual(lengths(), [2, 2]);
      const baseHash = await hashDiskView(snap.disks[0]!);
      const clone = await b.create(spec(`clone-${round}`, { disks }), { incoming: true, cloneOf: src.id, linkedDisks: snap.chains });
      assert.equal(await hashDiskView(clone.liveDiskView(0)), baseHash);
      if (round % 2 === 0) {
        // The clone goes first (a backup whose clone is removed before the source hears back).
        await b.destroy(clone.id);
        await snap.release('commit');
      } else {
        // The source hears back while the clone still lives (--keep-clone): the base stays, and is not written.
        await snap.release('commit');
        await sleep(30);
        await src.settleDisks();
        assert.deepEqual(lengths(), [2, 2], `round ${round}: the living clone pins its base`);
        assert.equal(await hashDiskView(clone.liveDiskView(0)), baseHash, 'the base under the clone is unchanged');
        await b.destroy(clone.id);
      }
      await src.settleDisks();
      assert.deepEqual(lengths(), [1, 1], `round ${round}: folded back once the clone is gone`);
    }
    // Two clones at once, on nested bases: each base folds back when its last clone goes.
    const s1 = await src.snapshotDisks({ shareable: true });
    const c1 = await b.create(spec('c1', { disks }), { incoming: true, cloneOf: src.id, linkedDisks: s1.chains });
    const h1 = await hashDiskView(s1.disks[1]!);
    await s1.release('commit');
    await sleep(30);
    const s2 = await src.snapshotDisks({ shareable: true });
    const c2 = await b.create(spec('c2', { disks }), { incoming: true, cloneOf: src.id, linkedDisks: s2.chains });
    const h2 = await hashDiskView(s2.disks[1]!);
    await s2.release('commit');
    await src.settleDisks();
    assert.deepEqual(lengths(), [3, 3], 'both bases pinned');
    await b.destroy(c2.id);
    await sleep(30);
    await src.settleDisks();
    assert.deepEqual(lengths(), [2, 2], "the upper base folded back; the lower one is still the first clone's");
    assert.equal(await hashDiskView(c1.liveDiskView(1)), h1, 'the base under the first clone is unchanged');
    assert.notEqual(h1, h2);
    await b.destroy(c1.id);
    await src.settleDisks();
    assert.deepEqual(lengths(), [1, 1]);
    await sleep(30);
    await src.suspend();
    assert.ok(src.diskWrites() > 3000, `${src.diskWrites()} writes`);
    await checkReplay(src, disks, 'hotset');
    // Nothing leaks: the datastore holds exactly the source's layers, none of them claimed-then-shared or pinned.
    const layers = readdirSync(join(shared, 'layers')).filter((x) => !x.startsWith('.'));
    assert.deepEqual(layers.sort(), src.diskChains().flat().sort());
  } finally {
    await a.close();
    await b.close();
  }
});

test('a base taken back cannot be linked: a late clone fails cleanly, a new shareable snapshot shares it again', async () => {
  const shared = join(root, `shared-${n++}`);
  const a = new SimDriver(host(shared));
  const b = new SimDriver(host(shared));
  try {
    const src = await a.create(spec('src', { disks: [{ name: 'disk0', sizeMib: 4, image: 'base' }] }));
    await src.suspend();
    const snap = await src.snapshotDisks({ shareable: true });
    const chains = snap.chains;
    const base = chains[0]![0]!;
    // Released before the clone host linked (the clone job gave up): no one else uses the base, so it is taken back.
    await snap.release('abort');
    assert.deepEqual(src.diskChains(), [[base]]);
    await src.writeDiskBlocks(0, 5, Buffer.alloc(DISK_BLOCK_SIZE, 0x77));
    await assert.rejects(b.create(spec('late', { disks: src.spec.disks }), { incoming: true, cloneOf: src.id, linkedDisks: chains }), /no longer a shared base/);
    assert.equal(b.list().length, 0);
    assert.equal(readdirSync(join(shared, 'layers', base, 'refs')).length, 1, 'the late clone left no reference behind');
    // Frozen again by a shareable snapshot, the same layer is a base a clone can link.
    const again = await src.snapshotDisks({ shareable: true });
    assert.deepEqual(again.chains, [[base]]);
    const clone = await b.create(spec('clone', { disks: src.spec.disks }), { incoming: true, cloneOf: src.id, linkedDisks: again.chains });
    assert.equal(await hashDiskView(clone.liveDiskView(0)), await hashDiskView(again.disks[0]!));
    await again.release('commit');
    assert.equal(src.diskChains()[0]!.length, 2, 'pinned by the clone');
  } finally {
    await a.close();
    await b.close();
  }
});

test('claiming a base and linking a clone on it at the same instant exclude each other', () => {
  const ds = new Datastore(join(root, `ds-${n++}`));
  const layer = ds.createLayer(DISK_BLOCK_SIZE * 4, 'h.src');
  const refsDir = join(ds.layerDir(layer), 'refs');
  // Another VM uses the base: no claim.
  ds.addRef(layer, 'h.clone');
  assert.equal(ds.claim(layer, 'h.src'), false);
  assert.equal(ds.claimed(layer), false);
  ds.addRef(layer, 'h.third');
  ds.dropRef(layer, 'h.clone');
  ds.dropRef(layer, 'h.third');
  // A linking host wrote its reference but has not looked for the claim yet: the claim sees it and backs off.
  writeFileSync(join(refsDir, 'h.racer'), '');
  assert.equal(ds.claim(layer, 'h.src'), false);
  assert.equal(ds.claimed(layer), false, 'a failed claim leaves no marker');
  ds.dropRef(layer, 'h.racer');
  // The claim went first: a link after it fails and takes its reference back.
  assert.equal(ds.claim(layer, 'h.src'), true);
  assert.equal(ds.claim(layer, 'h.src'), true, 'idempotent');
  assert.throws(() => ds.addRef(layer, 'h.late'), /no longer a shared base/);
  assert.deepEqual(ds.refs(layer), ['h.src']);
  // Shared again (a shareable snapshot froze it): links work.
  ds.share(layer);
  ds.addRef(layer, 'h.late');
  assert.deepEqual(ds.refs(layer).sort(), ['h.late', 'h.src']);
});

test('a base whose clone went while the source host was down folds back when the source loads', async () => {
  const shared = join(root, `shared-${n++}`);
  const ha = host(shared);
  const a = new SimDriver(ha);
  const b = new SimDriver(host(shared));
  try {
    const src = await a.create(spec('src', { diskWriteRate: 2000, disks: [{ name: 'disk0', sizeMib: 8, image: 'base' }] }));
    await sleep(50);
    const snap = await src.snapshotDisks({ shareable: true });
    const clone = await b.create(spec('clone', { disks: src.spec.disks }), { incoming: true, cloneOf: src.id, linkedDisks: snap.chains });
    await snap.release('commit');
    await sleep(50);
    await src.suspend();
    await src.settleDisks();
    assert.equal(src.diskChains()[0]!.length, 2);
    const hash = await hashDiskView(src.liveDiskView(0));
    await a.crash();
    await b.destroy(clone.id);
    const a2 = new SimDriver(ha);
    try {
      const [back] = await a2.load();
      assert.ok(back);
      assert.equal(back.diskChains()[0]!.length, 1, 'folded back at load');
      assert.equal(await hashDiskView(back.liveDiskView(0)), hash);
    } finally {
      await a2.close();
    }
  } finally {
    await b.close();
  }
});

test('on one host, destroying the last linked clone folds the running source back without a snapshot', async () => {
  const shared = join(root, `shared-${n++}`);
  const a = new SimDriver(host(shared));
  try {
    const src = await a.create(spec('src', { diskWriteRate: 5000, pattern: 'sequential', disks: [{ name: 'disk0', sizeMib: 64, image: '' }] }));
    await sleep(50);
    const snap = await src.snapshotDisks({ shareable: true });
    const clone = await a.create(spec('clone', { disks: src.spec.disks }), { incoming: true, cloneOf: src.id, linkedDisks: snap.chains });
    await snap.release('commit');
    assert.equal(src.diskChains()[0]!.length, 2);
    await a.destroy(clone.id);
    const deadline = Date.now() + 5000;
    while (src.diskChains()[0]!.length > 1 && Date.now() < deadline) await sleep(10);
    assert.equal(src.diskChains()[0]!.length, 1, 'the worker folded the base back');
    await src.suspend();
    await checkSequential(src.liveDiskView(0), src.diskWrites());
  } finally {
    await a.close();
  }
});

test('a crash while a taken-back base is being folded loses no completed write', async () => {
  const shared = join(root, `shared-${n++}`);
  const h = host(shared);
  for (let round = 0; round < 3; round++) {
    const d = new SimDriver(h);
    const [old] = await d.load();
    if (old) await d.destroy(old.id);
    const vm = await d.create(spec(`f${round}`, { diskWriteRate: 20_000, pattern: 'sequential', disks: [{ name: 'disk0', sizeMib: 64, image: '' }] }));
    await sleep(50);
    const snap = await vm.snapshotDisks({ shareable: true });
    await sleep(300);
    // No clone linked it: the release takes the base back and the worker starts folding the overlay into it.
    await snap.release('commit');
    await sleep(round * 3);
    await d.crash();
    const writes = vm.diskWrites();
    const d2 = new SimDriver(h);
    const [back] = await d2.load();
    assert.ok(back);
    assert.equal(back.diskChains()[0]!.length, 1, 'the load finishes the fold');
    await checkSequential(back.liveDiskView(0), writes, writes + 1);
    await d2.close();
  }
});
