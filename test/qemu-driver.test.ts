// The qemu driver against real QEMU 10 on TCG with the real test guest (one boot): create, suspend and run with
// the guest's own walk counters as the proof, disk snapshots with checkpoints (point-in-time views, changed
// blocks), describeExport, an agent restart that re-adopts the running QEMU, adoption of a foreign QEMU and of a
// bad socket, a QEMU crash (the VM comes back suspended from its disks), and destroy.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FailedPreconditionError, NotFoundError, type ClusterConfig, type VmSpec } from '../shared/src/mod.js';
import type { DiskView } from '../agent/src/drivers/driver.js';
import { hashDiskView } from '../agent/src/drivers/disk-hash.js';
import { mapCpuModel, QemuDriver, type QemuDriverOptions } from '../agent/src/drivers/qemu/qemu-driver.js';
import { isQemuOf, type QemuVm } from '../agent/src/drivers/qemu/qemu-vm.js';
import { readQemuVmRecord } from '../agent/src/drivers/qemu/vm-record.js';
import { QemuProcess } from '../agent/src/drivers/qemu/qemu-process.js';
import { buildQemuArgs } from '../agent/src/drivers/qemu/command-line.js';
import { createQcow2, imageInfo } from '../agent/src/drivers/qemu/qcow2.js';
import { ensureTestGuest, SerialConsole } from './helpers/guest.js';

const MiB = 1024 * 1024;
const RATE = 20_000;
const CMD_MS = 30_000;
const root = mkdtempSync(join(tmpdir(), 'doppel-qdrv-'));
const dataDir = join(root, 'host');
const dsDir = join(root, 'ds');
const foreignDir = join(root, 'foreign');
mkdirSync(foreignDir);

let opts: QemuDriverOptions | undefined;
let driver: QemuDriver | undefined;
let vm: QemuVm | undefined;
let serial: SerialConsole | undefined;
const foreign: QemuProcess[] = [];

after(async () => {
  serial?.close();
  await driver?.close().catch(() => undefined);
  // The driver's QEMUs outlive it by design: kill whatever a failed test left.
  const vmsDir = join(dataDir, 'vms');
  for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
    const rec = readQemuVmRecord(join(vmsDir, id));
    if (rec && !rec.adopted && isQemuOf(rec.pid, rec.qmpSocket)) process.kill(rec.pid, 'SIGKILL');
  }
  for (const q of foreign) {
    q.kill('SIGKILL');
    await q.exited;
  }
  rmSync(root, { recursive: true, force: true });
});

function need<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} is missing (an earlier test failed)`);
  return v;
}

async function command(text: string, re: RegExp): Promise<RegExpExecArray> {
  return need(serial, 'the serial console').command(text, re, CMD_MS);
}

async function stats(): Promise<{ walks: number; pages: number }> {
  const m = await command('stats', /^STATS walks=(\d+) pages_written=(\d+)/);
  return { walks: Number(m[1]), pages: Number(m[2]) };
}

async function diskWrite(n: number): Promise<void> {
  assert.equal((await command(`disk ${n}`, /^(DISK|ERR) .*/))[0], `DISK wrote=${n}`);
}

function blocksOf(bits: Uint32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < bits.length * 32; b++) if ((bits[b >>> 5]! >>> (b & 31)) & 1) out.push(b);
  return out;
}

function allocatedOf(v: DiskView): number[] {
  const out: number[] = [];
  for (let b = 0; b < v.blockCount; b++) if (v.isAllocated(b)) out.push(b);
  return out;
}

/** SHA-256 of every block of the view. */
async function blockHashes(v: DiskView): Promise<string[]> {
  const out: string[] = [];
  const batch = 64;
  const buf = Buffer.alloc(batch * v.blockSize);
  for (let b = 0; b < v.blockCount; b += batch) {
    const n = Math.min(batch, v.blockCount - b);
    await v.read(b, n, buf);
    for (let i = 0; i < n; i++) out.push(createHash('sha256').update(buf.subarray(i * v.blockSize, (i + 1) * v.blockSize)).digest('hex'));
  }
  return out;
}

const spec: VmSpec = {
  name: 'qd1',
  memoryMib: 256,
  vcpus: 1,
  cpuModel: 'no-such-cpu',
  workload: { dirtyRate: RATE, pattern: 'sequential', seed: 1, diskWriteRate: 0 },
  disks: [{ name: 'disk0', sizeMib: 64, image: '' }],
  nics: [{ network: 'lan' }],
};

test('CPU models: known ones as they are, host only under KVM, unknown ones as qemu64', () => {
  assert.deepEqual(mapCpuModel('Skylake-Client', 'tcg'), { requested: 'Skylake-Client', qemu: 'Skylake-Client', reason: '' });
  assert.equal(mapCpuModel('host', 'kvm').qemu, 'host');
  assert.equal(mapCpuModel('host', 'tcg').qemu, 'max');
  assert.equal(mapCpuModel('max', 'tcg').qemu, 'max');
  const m = mapCpuModel('Zen9000', 'kvm');
  assert.equal(m.qemu, 'qemu64');
  assert.match(m.reason, /Zen9000/);
});

test('create boots the test guest; suspend stops its walks, run resumes them', { timeout: 180_000 }, async (t) => {
  const guest = await ensureTestGuest();
  opts = {
    dataDir,
    datastoreDir: dsDir,
    boot: { kernel: guest.kernel, initrd: guest.initrd, append: `console=ttyS0 doppel.mem_mib=64 doppel.rate=${RATE} quiet` },
    accel: 'tcg',
  };
  driver = new QemuDriver(opts);
  const t0 = performance.now();
  vm = await driver.create(spec);
  const createdMs = performance.now() - t0;
  serial = await SerialConsole.connect(vm.serialSocketPath);
  await serial.waitFor(/DOPPEL-GUEST READY mem_mib=64/, 90_000);
  t.diagnostic(`create ${createdMs.toFixed(0)} ms (qemu-img, QEMU up, tracking, cont); READY ${(performance.now() - t0).toFixed(0)} ms after create started`);

  assert.equal(vm.state, 'running');
  const info = vm.info('h1');
  assert.equal(info.state, 'running');
  assert.equal(info.identity.mac, vm.spec.identity?.mac);
  assert.deepEqual(vm.cpuMapping, { requested: 'no-such-cpu', qemu: 'qemu64', reason: "'no-such-cpu' is not a CPU model doppel knows for QEMU; the guest gets 'qemu64'" });
  assert.match(vm.machineType, /^pc-q35-\d+\.\d+$/);
  assert.ok(isQemuOf(vm.pid, vm.qmpSocketPath));
  assert.ok(existsSync(join(dsDir, 'vms', vm.id, 'disk0.qcow2')));
  assert.ok(existsSync(join(dataDir, 'vms', vm.id, 'vm.json')));
  assert.deepEqual(vm.disks(), [{ name: 'disk0', sizeBytes: 64 * MiB, blockSize: 64 * 1024, blockCount: 1024 }]);
  assert.equal(driver.datastore.id, driver.datastore.id.trim());
  assert.ok(driver.datastore.id.startsWith('ds-'));
  // The SMBIOS UUID is the identity's; the console is logged next to QEMU's log, whoever is connected.
  const uuid = await need(vm.qmpClient ?? undefined, 'QMP').execute<{ UUID: string }>('query-uuid');
  assert.equal(uuid.UUID, vm.spec.identity?.uuid);
  assert.match(readFileSync(join(dataDir, 'vms', vm.id, 'serial.log'), 'latin1'), /DOPPEL-GUEST READY mem_mib=64/);

  const s1 = await stats();
  const ts = performance.now();
  await vm.suspend();
  t.diagnostic(`suspend ${(performance.now() - ts).toFixed(1)} ms`);
  assert.equal(vm.state, 'suspended');
  assert.equal(vm.suspendCount, 1);
  // Stopped vCPUs answer nothing: the command waits in the UART until the guest runs again.
  await assert.rejects(need(serial, 'serial').command('stats', /^STATS /, 1_000), /timed out/);
  await sleep(500);
  const tr = performance.now();
  await vm.run();
  t.diagnostic(`run ${(performance.now() - tr).toFixed(1)} ms`);
  assert.equal(vm.state, 'running');
  const late = await need(serial, 'serial').waitFor(/^STATS walks=(\d+) pages_written=(\d+)/, 10_000);
  const s2 = { walks: Number(late[1]), pages: Number(late[2]) };
  await sleep(1_000);
  const s3 = await stats();
  t.diagnostic(`pages written: ${s2.pages - s1.pages} across a 1.5 s suspension, ${s3.pages - s2.pages} in the next second running; walks ${s1.walks} → ${s2.walks} → ${s3.walks}`);
  assert.ok(s2.pages - s1.pages < RATE / 2, `the walker wrote ${s2.pages - s1.pages} pages while suspended for 1.5 s`);
  assert.ok(s3.pages - s2.pages > RATE / 4, `the walker wrote only ${s3.pages - s2.pages} pages in a second after run`);
  assert.ok(s3.walks > s1.walks, 'walks go on after run');
});

test('disk snapshots with checkpoints: point-in-time views, the changes of each checkpoint, folded back on release', { timeout: 180_000 }, async (t) => {
  const v = need(vm, 'the VM');
  await diskWrite(20);
  let t0 = performance.now();
  const snap1 = await v.snapshotDisks({ checkpoint: 'bk1' });
  t.diagnostic(`snapshotDisks (pause, transaction, resume, bitmap read, view) ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(v.state, 'running', 'a running VM runs on after the snapshot');
  assert.equal(v.suspendCount, 2);
  assert.equal(snap1.disks.length, 1);
  const view1 = snap1.disks[0]!;
  assert.equal(view1.name, 'disk0');
  assert.equal(view1.blockCount, 1024);
  const ch1 = snap1.changes[0];
  assert.ok(ch1, 'tracking since the disk was created');
  assert.equal(ch1.since, '');
  const bits1 = blocksOf(ch1.bitmap);
  assert.ok(bits1.length >= 10 && bits1.length <= 20, `20 random 4 KiB writes hit ${bits1.length} blocks`);
  assert.deepEqual(allocatedOf(view1), bits1, 'a blank disk holds exactly the changed blocks');
  t0 = performance.now();
  const hashes1 = await blockHashes(view1);
  const whole1 = await hashDiskView(view1);
  t.diagnostic(`hashing the 64 MiB view twice over NBD ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(v.diskFiles()[0]!.top, join(dsDir, 'vms', v.id, 'disk0.s1.qcow2'));

  await diskWrite(20);
  assert.equal(await hashDiskView(view1), whole1, 'the view is point-in-time: later guest writes do not show');
  t0 = performance.now();
  await snap1.release('commit');
  await snap1.release('commit');
  t.diagnostic(`release (checkpoint commit, block-commit of the overlay) ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(v.diskFiles()[0]!.top, v.diskFiles()[0]!.path);
  assert.deepEqual(readdirSync(join(dsDir, 'vms', v.id)), ['disk0.qcow2'], 'the overlay is folded back and gone');

  await diskWrite(10);
  const snap2 = await v.snapshotDisks({ checkpoint: 'bk2' });
  const ch2 = snap2.changes[0];
  assert.ok(ch2);
  assert.equal(ch2.since, 'bk1');
  const hashes2 = await blockHashes(snap2.disks[0]!);
  const differ = hashes2.flatMap((h, b) => (h !== hashes1[b] ? [b] : []));
  const bits2 = blocksOf(ch2.bitmap);
  t.diagnostic(`changed blocks: ${bits1.length} up to bk1, ${bits2.length} between bk1 and bk2`);
  assert.deepEqual(bits2, differ, 'the changes since bk1 are exactly the blocks that differ from the bk1 snapshot');
  assert.ok(bits1.some((b) => !bits2.includes(b)), 'blocks written only before bk1 are not in the changes since bk1');
  await assert.rejects(v.snapshotDisks({ checkpoint: 'bk-x' }), /one at a time/);
  await snap2.release('commit');
  assert.match((await command('diskcheck', /^(DISKCHECK|ERR) .*/))[0], /^DISKCHECK ok blocks=\d+ max_seq=50$/);

  // The counters come from query-blockstats, refreshed every second.
  for (let i = 0; i < 150 && v.usage().diskWriteBytes < 50 * 4096; i++) await sleep(20);
  assert.ok(v.diskWrites() > 0, 'query-blockstats counted the guest writes');
  assert.ok(v.usage().diskWriteBytes >= 50 * 4096);
  assert.ok((v.usage().cpuMs ?? 0) > 0);
  t0 = performance.now();
  const rate = await v.measureDirtyRate(500);
  t.diagnostic(`calc-dirty-rate over 500 ms: ${rate.toFixed(0)} pages/s (the guest writes ${RATE}/s) in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.ok(rate > 0);
});

test('describeExport: qcow2 files on the datastore, NICs on the cluster networks', () => {
  const d = need(driver, 'the driver');
  const v = need(vm, 'the VM');
  const cluster: ClusterConfig = {
    name: 'c1',
    hosts: ['h1'],
    networks: [{ name: 'lan', bridge: 'br-lan', vlan: 7 }],
    datastores: [{ name: 'ds1', path: dsDir, capacityMib: 0 }],
    cpuModels: ['qemu64'],
    maxVmMemoryMib: 0,
    registeredAt: '',
  };
  const exp = d.describeExport(v.id, cluster);
  assert.equal(exp.id, v.id);
  assert.equal(exp.name, 'qd1');
  assert.equal(exp.memoryMib, 256);
  assert.equal(exp.cpuModel, 'no-such-cpu');
  assert.deepEqual(exp.datastore, { name: 'ds1', path: dsDir });
  assert.deepEqual(exp.disks, [{ name: 'disk0', sizeMib: 64, image: '', format: 'qcow2', path: join(dsDir, 'vms', v.id, 'disk0.qcow2') }]);
  assert.deepEqual(exp.nics, [{ name: 'nic0', network: 'lan', bridge: 'br-lan', vlan: 7, mac: v.spec.identity!.mac }]);
  assert.throws(() => d.describeExport('vm-nope', cluster), NotFoundError);
  const space = d.datastoreSpace();
  assert.ok(space.usedMib >= 0 && space.freeMib > 0);
});

test('what qemu does not do throws FailedPrecondition', async () => {
  const v = need(vm, 'the VM');
  await assert.rejects(v.memoryHash(), /not on qemu \(use the guest's own memory check\)/);
  assert.throws(() => v.pages(), FailedPreconditionError);
  await assert.rejects(v.hotFreeze(), FailedPreconditionError);
  // A complete VM takes no blocks; a running one has no consistent live view.
  await assert.rejects(v.writeDiskBlocks(0, 0, Buffer.alloc(64 * 1024, 1)), (e: unknown) => e instanceof FailedPreconditionError && /is complete/.test(e.message));
  assert.throws(() => v.liveDiskView(0), (e: unknown) => e instanceof FailedPreconditionError && /is running/.test(e.message));
  await assert.rejects(v.linkDisks([[`vms/${v.id}/disk0.qcow2`]]), (e: unknown) => e instanceof FailedPreconditionError && /only an incoming clone links/.test(e.message));
  await assert.rejects(v.createStorageSnapshot(), /not supported by the qemu driver yet/);
  assert.deepEqual(v.bypassVolumes(), []);
  await assert.rejects(need(driver, 'driver').create({ ...spec, name: 'byp', bypass: [{ name: 'b', sizeMib: 1 }] }), /bypass volumes is not supported/);
});

test('disks from an image overlay one blank base per image, made once and kept', { timeout: 60_000 }, async () => {
  const d = need(driver, 'the driver');
  const mk = (name: string): VmSpec => ({ ...spec, name, cpuModel: 'qemu64', memoryMib: 128, nics: [], disks: [{ name: 'root', sizeMib: 16, image: 'debian-12' }] });
  const made: QemuVm[] = [];
  const base = join(dsDir, 'images', 'debian-12.qcow2');
  try {
    made.push(await d.create(mk('img-a')));
    made.push(await d.create(mk('img-b')));
    for (const v of made) {
      const [top] = await imageInfo(v.diskFiles()[0]!.path, { forceShare: true });
      assert.equal(top?.backingFilename, '../../images/debian-12.qcow2');
      assert.equal(resolve(top?.fullBackingFilename ?? ''), base);
      assert.equal(top?.clusterSize, 64 * 1024);
    }
    assert.deepEqual(readdirSync(join(dsDir, 'images')), ['debian-12.qcow2']);
  } finally {
    for (const v of made) assert.equal(await d.destroy(v.id), true);
  }
  assert.ok(existsSync(base), 'the image base outlives its VMs');
});

test('without boot data QEMU boots its firmware from the first disk', { timeout: 60_000 }, async () => {
  const fw = new QemuDriver({ dataDir: join(root, 'fw-host'), datastoreDir: join(root, 'fw-ds'), boot: null, accel: 'tcg' });
  try {
    const v = await fw.create({ ...spec, name: 'fw', cpuModel: 'qemu64', memoryMib: 128, nics: [], disks: [{ name: 'root', sizeMib: 16, image: '' }] });
    assert.equal(v.state, 'running');
    const rec = readQemuVmRecord(join(root, 'fw-host', 'vms', v.id));
    const argv = readFileSync(`/proc/${rec?.pid ?? 0}/cmdline`, 'utf8').split('\0');
    assert.ok(!argv.includes('-kernel') && !argv.includes('-initrd') && !argv.includes('-append'), argv.join(' '));
    assert.equal(await fw.destroy(v.id), true);
  } finally {
    await fw.close();
  }
});

test('an agent restart re-adopts the running QEMU: the guest never stops, tracking goes on', { timeout: 120_000 }, async (t) => {
  const old = need(vm, 'the VM');
  const pid = old.pid;
  await need(driver, 'the driver').close();
  assert.ok(isQemuOf(pid, old.qmpSocketPath), 'QEMU outlives the driver');
  await assert.rejects(old.run(), /driver was closed/);
  const t0 = performance.now();
  driver = new QemuDriver(need(opts, 'options'));
  const loaded = await driver.load();
  t.diagnostic(`load (re-adopt) ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(loaded.length, 1);
  const v = loaded[0]!;
  vm = v;
  assert.equal(v.id, old.id);
  assert.equal(v.pid, pid);
  assert.equal(v.state, 'running');
  const a = await stats();
  await sleep(800);
  const b = await stats();
  assert.ok(b.pages > a.pages, 'the walks continue');

  await diskWrite(5);
  const snap = await v.snapshotDisks({ checkpoint: 'bk3' });
  const ch = snap.changes[0];
  assert.equal(ch?.since, 'bk2', 'change tracking survived the restart');
  const n = blocksOf(ch.bitmap).length;
  assert.ok(n >= 1 && n <= 5, `5 writes hit ${n} blocks`);
  await snap.release('commit');
  await v.suspend();
  assert.equal(v.state, 'suspended');
  await v.run();
  assert.equal(v.state, 'running');
});

test('adopt: a bad QMP socket path is a NotFoundError naming it; a foreign QEMU is read over QMP and managed', { timeout: 120_000 }, async () => {
  const d = need(driver, 'the driver');
  const bad = join(root, 'no-such-dir', 'qmp.sock');
  await assert.rejects(d.adopt(bad, 'ghost'), (err: unknown) => {
    assert.ok(err instanceof NotFoundError, String(err));
    assert.ok(err.message.includes(bad), err.message);
    return true;
  });
  assert.equal(d.list().length, 1);
  assert.equal(readdirSync(join(dataDir, 'vms')).length, 1, 'a failed adopt leaves no record');

  const disk = join(foreignDir, 'f0.qcow2');
  const disk1 = join(foreignDir, 'f1.qcow2');
  await createQcow2(disk, { sizeBytes: 32 * MiB });
  await createQcow2(disk1, { sizeBytes: 16 * MiB });
  const qmpSocket = join(foreignDir, 'qmp.sock');
  const q = await QemuProcess.start({
    args: buildQemuArgs({
      name: 'foreign',
      memoryMib: 128,
      vcpus: 2,
      cpuModel: 'qemu64',
      accel: 'tcg',
      disks: [
        { path: disk, format: 'qcow2' },
        { path: disk1, format: 'qcow2' },
      ],
      nics: [{ mac: '52:54:00:aa:bb:cc', netdev: 'none' }],
      serialSocket: join(foreignDir, 'serial.sock'),
      qmpSocket,
      paused: true,
    }),
    qmpSocketPath: qmpSocket,
  });
  foreign.push(q);
  await q.qmp.close(); // QEMU serves one QMP client at a time
  const f = await d.adopt(qmpSocket, 'foreign-vm');
  assert.equal(f.adopted, true);
  assert.equal(f.pid, q.pid);
  assert.equal(f.state, 'suspended');
  assert.equal(f.spec.memoryMib, 128);
  assert.equal(f.spec.vcpus, 2);
  assert.equal(f.spec.cpuModel, 'qemu64');
  assert.deepEqual(f.spec.disks, [
    { name: 'disk0-dev', sizeMib: 32, image: '' },
    { name: 'disk1-dev', sizeMib: 16, image: '' },
  ]);
  assert.equal(f.spec.identity?.mac, '52:54:00:aa:bb:cc');
  await assert.rejects(d.adopt(qmpSocket, 'again'), /already vm/);

  /** Writes through the disk's device (HMP qemu-io on its BlockBackend): a stand-in for guest writes. */
  const write = async (dev: string, pattern: number, offset: string): Promise<void> => {
    const qmp = f.qmpClient;
    assert.ok(qmp);
    const out = await qmp.execute<string>('human-monitor-command', { 'command-line': `qemu-io -d /machine/peripheral/${dev}/virtio-backend "write -P ${pattern} ${offset} 64k"` });
    assert.doesNotMatch(out, /error|fail/i, out);
  };
  await assert.rejects(f.snapshotDisks({ shareable: true }), /a shareable snapshot needs every disk as a qcow2 image in the datastore/);
  // No tracking until the first checkpoint: its changes are unknown (a full backup), the next one's are not.
  const s1 = await f.snapshotDisks({ checkpoint: 'f1' });
  assert.deepEqual(s1.changes, [null, null]);
  assert.deepEqual(s1.disks.map((v) => [v.name, v.blockCount]), [['disk0-dev', 512], ['disk1-dev', 256]]);
  await s1.release('commit');
  await write('disk0-dev', 0x11, '0');
  await write('disk1-dev', 0x5a, '1M');
  // Both disks freeze in one transaction; the changes are per disk.
  const s2 = await f.snapshotDisks({ checkpoint: 'f2' });
  assert.deepEqual(s2.changes.map((c) => [c?.since, blocksOf(c!.bitmap)]), [['f1', [0]], ['f1', [16]]]);
  const v1 = s2.disks[1]!;
  const buf = Buffer.alloc(v1.blockSize);
  await v1.read(16, 1, buf);
  assert.ok(buf.every((b) => b === 0x5a));
  const h1 = await hashDiskView(v1);
  await write('disk1-dev', 0x77, '1088k');
  assert.equal(await hashDiskView(v1), h1);
  // An aborted checkpoint merges back: the next changes are still since f1, and hold the writes after f2 too.
  await s2.release('abort');
  const s3 = await f.snapshotDisks({ checkpoint: 'f3' });
  assert.deepEqual(s3.changes.map((c) => [c?.since, blocksOf(c!.bitmap)]), [['f1', [0]], ['f1', [16, 17]]]);
  // alsoChanged: null drops a disk's tracking; a bitmap adds blocks to the new checkpoint's changes.
  const also = new Uint32Array(8);
  also[100 >>> 5] = 1 << (100 & 31);
  await s3.release('commit', [null, also]);
  const s4 = await f.snapshotDisks({ checkpoint: 'f4' });
  assert.deepEqual(s4.changes.map((c) => c && [c.since, blocksOf(c.bitmap)]), [null, ['f3', [100]]]);
  await s4.release('commit');
  // A snapshot without a checkpoint leaves change tracking as it was.
  await write('disk1-dev', 0x33, '2M');
  const s5 = await f.snapshotDisks();
  assert.deepEqual(s5.changes, []);
  await s5.release('commit');
  const s6 = await f.snapshotDisks({ checkpoint: 'f6' });
  assert.deepEqual(s6.changes.map((c) => c && [c.since, blocksOf(c.bitmap)]), [['f4', []], ['f4', [32]]]);
  await s6.release('invalidate');
  assert.equal(await d.destroy(f.id), true);
  const exit = await Promise.race([q.exited, sleep(15_000, null, { ref: false })]);
  assert.ok(exit, 'destroy quits the adopted QEMU');
  assert.ok(existsSync(disk), "an adopted QEMU's own disk stays");
  assert.equal(d.list().length, 1);
});

test('a QEMU that dies comes back suspended from its disks at the next load; destroy removes everything', { timeout: 120_000 }, async (t) => {
  const v = need(vm, 'the VM');
  const sock = v.qmpSocketPath;
  serial?.close();
  serial = undefined;
  process.kill(v.pid, 'SIGKILL');
  for (let i = 0; i < 200 && v.connected; i++) await sleep(20);
  assert.equal(v.connected, false);
  assert.equal(v.state, 'suspended');
  await need(driver, 'the driver').close();
  const t0 = performance.now();
  driver = new QemuDriver(need(opts, 'options'));
  const loaded = await driver.load();
  t.diagnostic(`load (restart from disks, paused) ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(loaded.length, 1);
  const r = loaded[0]!;
  vm = r;
  assert.equal(r.id, v.id);
  assert.equal(r.state, 'suspended');
  assert.notEqual(r.pid, v.pid);
  assert.ok(isQemuOf(r.pid, sock));
  // The killed QEMU left its tracking bitmap unusable: the next changes are unknown, never wrong.
  const snap = await r.snapshotDisks({ checkpoint: 'bk4' });
  assert.deepEqual(snap.changes, [null]);
  await snap.release('commit');

  // A snapshot still open when QEMU dies: the next load folds its overlay back into the disk.
  const open = await r.snapshotDisks({ checkpoint: 'bk5' });
  const overlay = r.diskFiles()[0]!.top;
  assert.match(overlay, /disk0\.s\d+\.qcow2$/);
  assert.ok(existsSync(overlay));
  process.kill(r.pid, 'SIGKILL');
  for (let i = 0; i < 200 && r.connected; i++) await sleep(20);
  await open.release('commit');
  await need(driver, 'the driver').close();
  driver = new QemuDriver(need(opts, 'options'));
  const [again] = await driver.load();
  assert.ok(again);
  vm = again;
  assert.equal(again.state, 'suspended');
  assert.equal(again.diskFiles()[0]!.top, again.diskFiles()[0]!.path);
  assert.deepEqual(readdirSync(join(dsDir, 'vms', r.id)), ['disk0.qcow2'], 'the leftover overlay is folded back and gone');
  const after1 = await again.snapshotDisks({ checkpoint: 'bk6' });
  assert.deepEqual(after1.changes, [null]);
  await after1.release('commit');

  const pid = again.pid;
  const d = need(driver, 'the driver');
  assert.equal(await d.destroy(again.id), true);
  assert.equal(isQemuOf(pid, sock), false, 'the QEMU is gone');
  assert.equal(existsSync(join(dataDir, 'vms', r.id)), false);
  assert.equal(existsSync(join(dsDir, 'vms', r.id)), false);
  assert.deepEqual(d.list(), []);
  assert.equal(await d.destroy(r.id), false);
  vm = undefined;
});

// ---- targets: an incoming clone before its migration, a restore filled with writeDiskBlocks ----

/** One 4 KiB block as the guest's `disk N` writes it (test/guest/memtest.c fill_block): its diskcheck verifies it. */
function guestBlock(blk: number, seq: number): Buffer {
  const b = Buffer.alloc(4096);
  b.write('DOPPELDK', 0, 'latin1');
  b.writeBigUInt64LE(BigInt(blk), 8);
  b.writeBigUInt64LE(BigInt(seq), 16);
  let x = ((Math.imul(blk, 2654435761) ^ Math.imul(seq, 40503) ^ 0x85ebca6b) | 1) >>> 0;
  for (let o = 32; o < 4096; o += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, o);
  }
  return b;
}

/** 64 KiB disk blocks [first, first + n) filled with guest blocks, numbered from `seq` on. */
function guestBlocks(first: number, n: number, seq: number): Buffer {
  const parts: Buffer[] = [];
  for (let g = first * 16; g < (first + n) * 16; g++) parts.push(guestBlock(g, seq++));
  return Buffer.concat(parts);
}

function bitsFor(blocks: number[], words: number): Uint32Array {
  const bits = new Uint32Array(words);
  for (const b of blocks) bits[b >>> 5]! |= 1 << (b & 31);
  return bits;
}

test('an incoming clone before its migration landed: no fill, no snapshot, no live view, clear errors', { timeout: 60_000 }, async () => {
  const d = need(driver, 'the driver');
  const inc = await d.create({ ...spec, name: 'inc1', cpuModel: 'qemu64', nics: [], disks: [{ name: 'disk0', sizeMib: 16, image: 'debian-12' }] }, { incoming: true, cloneOf: 'vm-src' });
  try {
    assert.equal(inc.state, 'suspended');
    assert.equal(inc.cloneOf, 'vm-src');
    const dir = join(dsDir, 'vms', inc.id);
    assert.deepEqual(readdirSync(dir).sort(), ['disk0.base.qcow2', 'disk0.qcow2'], 'a blank disk over a blank staged base, whatever the image');
    const [top] = await imageInfo(inc.diskFiles()[0]!.path, { forceShare: true });
    assert.equal(top?.backingFilename, join(dir, 'disk0.base.qcow2'), 'absolute while QEMU attaches it live');
    assert.deepEqual(inc.diskChains(), [[`vms/${inc.id}/disk0.base.qcow2`, `vms/${inc.id}/disk0.qcow2`]]);
    const landed = (e: unknown): boolean => e instanceof FailedPreconditionError && /incoming migration has not landed/.test(e.message);
    await assert.rejects(inc.writeDiskBlocks(0, 0, Buffer.alloc(64 * 1024, 1)), landed);
    await assert.rejects(inc.snapshotDisks({ checkpoint: 'x' }), landed);
    await assert.rejects(inc.liveDiskView(0).read(0, 1, Buffer.alloc(64 * 1024)), landed);
    await assert.rejects(inc.writeDiskBlocks(1, 0, Buffer.alloc(64 * 1024)), /disk 1 does not exist/);
    await assert.rejects(inc.writeDiskBlocks(0, 0, Buffer.alloc(1000)), /not whole 65536-byte blocks/);
    assert.throws(() => inc.inheritChanges(0, { since: 'b1', bitmap: new Uint32Array(3) }), /a bitmap of 3 words, the disk has 8/);
  } finally {
    assert.equal(await d.destroy(inc.id), true);
  }
});

test('a restore: writeDiskBlocks fills it paused, inherited changes join the first checkpoint, then only the guest’s writes', { timeout: 180_000 }, async (t) => {
  const d = need(driver, 'the driver');
  const words = 1024 / 32;
  const t0 = performance.now();
  const r = await d.create({ ...spec, name: 'rst1', cpuModel: 'qemu64', nics: [] }, { restore: true });
  const rserial = await SerialConsole.connect(r.serialSocketPath);
  try {
    assert.equal(r.state, 'suspended');
    assert.equal(readQemuVmRecord(join(dataDir, 'vms', r.id))?.complete, false);
    // Blocks 10-11 and 21 hold guest blocks; zero blocks (100, 20) cost nothing on the blank base.
    const a = guestBlocks(10, 2, 901);
    await r.writeDiskBlocks(0, 10, a);
    await r.writeDiskBlocks(0, 100, Buffer.alloc(64 * 1024));
    const b = Buffer.concat([Buffer.alloc(64 * 1024), guestBlocks(21, 1, 933)]);
    await r.writeDiskBlocks(0, 20, b);
    // The source's changes replace the fill's so far; blocks written after them add to them.
    r.inheritChanges(0, { since: 'b1', bitmap: bitsFor([3, 5], words) });
    const c = guestBlocks(200, 1, 949);
    await r.writeDiskBlocks(0, 200, c);
    t.diagnostic(`create + 4 fills ${(performance.now() - t0).toFixed(0)} ms`);

    // The first checkpoint ends the fill: the staged base is attached, and the changes are the inherited ones.
    const s2 = await r.snapshotDisks({ checkpoint: 'b2' });
    const ch2 = s2.changes[0];
    assert.equal(ch2?.since, 'b1');
    assert.deepEqual(blocksOf(ch2.bitmap), [3, 5, 200]);
    const v = s2.disks[0]!;
    assert.deepEqual(allocatedOf(v), [10, 11, 21, 200], 'zero blocks stay holes');
    const back = Buffer.alloc(2 * 64 * 1024);
    await v.read(10, 2, back);
    assert.ok(back.equals(a));
    await v.read(20, 2, back);
    assert.ok(back.equals(b));
    await assert.rejects(r.writeDiskBlocks(0, 300, c), (e: unknown) => e instanceof FailedPreconditionError && /fill was finished/.test(e.message));
    const was = await blockHashes(v);
    await s2.release('commit');
    const [top] = await imageInfo(r.diskFiles()[0]!.path, { forceShare: true });
    assert.equal(top?.backingFilename, join(dsDir, 'vms', r.id, 'disk0.base.qcow2'));
    assert.deepEqual(r.diskChains(), [[`vms/${r.id}/disk0.base.qcow2`, `vms/${r.id}/disk0.qcow2`]]);
    assert.deepEqual(r.storageUsage().map((u) => [u.id, u.shared]), [[`vms/${r.id}/disk0.base.qcow2`, false], [`vms/${r.id}/disk0.qcow2`, false]]);
    assert.ok(r.storageUsage()[0]!.bytes >= 4 * 64 * 1024, 'the base holds the four blocks');

    // A live view of the paused disk; the VM's run closes it.
    const live = r.liveDiskView(0);
    assert.equal(live.blockCount, 1024);
    await live.read(200, 1, back);
    assert.ok(back.subarray(0, 64 * 1024).equals(c));
    r.markComplete();
    await r.run();
    assert.equal(readQemuVmRecord(join(dataDir, 'vms', r.id))?.complete, true);
    await assert.rejects(live.read(200, 1, back), (e: unknown) => e instanceof FailedPreconditionError && /was closed/.test(e.message));

    // The guest boots fresh on the restored disk: its own check finds the 64 guest blocks written above.
    await rserial.waitFor(/DOPPEL-GUEST READY mem_mib=64/, 90_000);
    const check = async (): Promise<string> => (await rserial.command('diskcheck', /^(DISKCHECK|ERR) .*/, CMD_MS))[0];
    assert.equal(await check(), 'DISKCHECK ok blocks=64 max_seq=964');
    assert.equal((await rserial.command('disk 7', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=7');
    const s3 = await r.snapshotDisks({ checkpoint: 'b3' });
    const ch3 = s3.changes[0];
    assert.equal(ch3?.since, 'b2');
    const own = blocksOf(ch3.bitmap);
    assert.ok(own.length >= 1 && own.length <= 7, `7 guest writes hit ${own.length} blocks`);
    // Exactly the blocks that differ from the b2 snapshot's view.
    const now = await blockHashes(s3.disks[0]!);
    assert.deepEqual(own, now.flatMap((h, i) => (h !== was[i] ? [i] : [])));
    await s3.release('commit');
    assert.match(await check(), /^DISKCHECK ok blocks=(6\d|7[01]) max_seq=964$/);

    // Its QEMU dies: the next load starts a new one on the same chain, whose header names the base relatively again.
    rserial.close();
    process.kill(r.pid, 'SIGKILL');
    for (let i = 0; i < 200 && r.connected; i++) await sleep(20);
    await d.close();
    driver = new QemuDriver(need(opts, 'options'));
    const again = (await driver.load()).find((x) => x.id === r.id);
    assert.ok(again, 'the restored VM is loaded');
    assert.equal(again.state, 'suspended');
    const [top2] = await imageInfo(again.diskFiles()[0]!.path, { forceShare: true });
    assert.equal(top2?.backingFilename, 'disk0.base.qcow2');
    const s4 = await again.snapshotDisks({ checkpoint: 'b4' });
    assert.deepEqual(s4.changes, [null], 'a killed QEMU loses tracking');
    await s4.disks[0]!.read(10, 2, back);
    assert.ok(back.equals(a), 'the restored blocks are still read through the base');
    await s4.release('commit');
  } finally {
    rserial.close();
    const dd = need(driver, 'the driver');
    assert.equal(await dd.destroy(r.id), true);
  }
  assert.equal(existsSync(join(dsDir, 'vms', r.id)), false);
});
