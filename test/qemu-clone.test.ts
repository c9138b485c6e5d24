// The live clone of a real QEMU guest (TCG) between two qemu drivers, frames wired in-process (sink → feed): a
// streamed clone (memory over the relay, disks copied from the frozen bases over NBD), a destination killed
// mid-stream, and a linked clone on a shared datastore.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { newIdentity, type VmSpec } from '../shared/src/mod.js';
import { QemuDriver, type QemuDriverOptions } from '../agent/src/drivers/qemu/qemu-driver.js';
import { isQemuOf, type QemuVm } from '../agent/src/drivers/qemu/qemu-vm.js';
import { readQemuVmRecord } from '../agent/src/drivers/qemu/vm-record.js';
import {
  acceptMigration,
  CloneFailedError,
  copyFrozenDisks,
  finishIncoming,
  linkFrozenDisks,
  prepareCloneTarget,
  releaseFrozenDisks,
  runSourceClone,
  type CloneRound,
} from '../agent/src/drivers/qemu/qemu-clone.js';
import { MigrationRelayError } from '../agent/src/drivers/qemu/migration-relay.js';
import { imageInfo } from '../agent/src/drivers/qemu/qcow2.js';
import { ensureTestGuest, SerialConsole } from './helpers/guest.js';

const RATE = 20_000;
const AREA_MIB = 128;
const CMD_MS = 60_000;
const MEMCHECK = /^MEMCHECK (ok|fail).*/;
const root = mkdtempSync(join(tmpdir(), 'doppel-qclone-'));
const shared = join(root, 'shared-ds');

const drivers: QemuDriver[] = [];
const consoles: SerialConsole[] = [];
after(async () => {
  for (const c of consoles) c.close();
  for (const d of drivers) {
    for (const vm of d.list()) await d.destroy(vm.id).catch(() => undefined);
    await d.close().catch(() => undefined);
  }
  for (const host of ['src', 'dst', 'linked']) {
    const vmsDir = join(root, host, 'vms');
    for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
      const rec = readQemuVmRecord(join(vmsDir, id));
      if (rec && isQemuOf(rec.pid, rec.qmpSocket)) process.kill(rec.pid, 'SIGKILL');
    }
  }
  if (!process.env.DOPPEL_KEEP_TEST_DIRS) rmSync(root, { recursive: true, force: true });
});

let env: Promise<{ src: QemuDriver; dst: QemuDriver; linked: QemuDriver; vm: QemuVm; serial: SerialConsole }> | undefined;
function setup(): Promise<{ src: QemuDriver; dst: QemuDriver; linked: QemuDriver; vm: QemuVm; serial: SerialConsole }> {
  env ??= (async () => {
    const guest = await ensureTestGuest();
    const base: Omit<QemuDriverOptions, 'dataDir'> = {
      boot: { kernel: guest.kernel, initrd: guest.initrd, append: `console=ttyS0 doppel.mem_mib=${AREA_MIB} doppel.rate=${RATE} quiet` },
      accel: 'tcg',
    };
    // The source on the shared datastore; the streamed clone's host has its own; the linked one shares.
    const src = new QemuDriver({ ...base, dataDir: join(root, 'src'), datastoreDir: shared });
    const dst = new QemuDriver({ ...base, dataDir: join(root, 'dst') });
    const linked = new QemuDriver({ ...base, dataDir: join(root, 'linked'), datastoreDir: shared });
    drivers.push(src, dst, linked);
    const spec: VmSpec = {
      name: 'csrc',
      memoryMib: 256,
      vcpus: 1,
      cpuModel: 'qemu64',
      workload: { dirtyRate: RATE, pattern: 'sequential', seed: 1, diskWriteRate: 0 },
      disks: [{ name: 'disk0', sizeMib: 64, image: '' }],
      nics: [],
    };
    const vm = await src.create(spec);
    const serial = await SerialConsole.connect(vm.serialSocketPath);
    consoles.push(serial);
    await serial.waitFor(new RegExp(`DOPPEL-GUEST READY mem_mib=${AREA_MIB}`), 120_000);
    return { src, dst, linked, vm, serial };
  })();
  return env;
}

async function checkMemory(serial: SerialConsole, who: string): Promise<void> {
  const m = await serial.command('check', MEMCHECK, CMD_MS);
  assert.match(m[0], /^MEMCHECK ok pages=32768 /, `${who}: ${m[0]}`);
}

function blocksOf(bits: Uint32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < bits.length * 32; b++) if ((bits[b >>> 5]! >>> (b & 31)) & 1) out.push(b);
  return out;
}

async function diskcheck(serial: SerialConsole): Promise<string> {
  return (await serial.command('diskcheck', /^(DISKCHECK|ERR) .*/, CMD_MS))[0];
}

async function stats(serial: SerialConsole): Promise<{ walks: number; pages: number }> {
  const m = await serial.command('stats', /^STATS walks=(\d+) pages_written=(\d+)/, CMD_MS);
  return { walks: Number(m[1]), pages: Number(m[2]) };
}

async function assertWorkloadRuns(serial: SerialConsole, who: string): Promise<void> {
  const a = await stats(serial);
  await sleep((2 * AREA_MIB * 256 * 1000) / RATE);
  const b = await stats(serial);
  assert.ok(b.pages > a.pages && b.walks > a.walks, `${who}: the workload runs on (${JSON.stringify(a)} → ${JSON.stringify(b)})`);
}

test('a streamed live clone: memory over the relay, disks from the frozen bases; both sides run intact', { timeout: 300_000 }, async (t) => {
  const { src, dst, vm, serial } = await setup();
  assert.equal((await serial.command('disk 50', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=50');
  const before = await diskcheck(serial);
  assert.match(before, /^DISKCHECK ok blocks=\d+ max_seq=50$/);
  await checkMemory(serial, 'source before');

  const clone = await prepareCloneTarget(dst, vm.spec, 'cdst', newIdentity('cdst'), { cloneOf: vm.id });
  const cserial = await SerialConsole.connect(clone.serialSocketPath);
  consoles.push(cserial);
  assert.equal(clone.machineType, vm.machineType, 'the same pinned machine type');
  const inc = await acceptMigration(clone);
  const rounds: CloneRound[] = [];
  const s = await runSourceClone(vm, (f) => inc.feed.write(f), { downtimeLimitMs: 300, maxBandwidthBytesPerS: 0, onRound: (r) => rounds.push(r) });
  await finishIncoming(clone, inc);
  await inc.feed.end().catch(() => undefined);
  assert.equal(vm.state, 'running', 'the source runs on');
  assert.equal(s.frozen.length, 1);
  assert.equal(s.frozen[0]!.path, vm.diskFiles()[0]!.path, 'the frozen base is the disk’s own image');
  assert.notEqual(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'the source writes an overlay meanwhile');

  let copy;
  const copied: number[] = [];
  try {
    const v = s.frozen[0]!.view;
    for (let b = 0; b < v.blockCount; b++) if (v.isAllocated(b)) copied.push(b);
    copy = await copyFrozenDisks(s.frozen.map((f) => f.view), clone);
  } finally {
    await releaseFrozenDisks(s);
  }
  assert.equal(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'the overlay folded back');
  assert.equal(copy.blocks, copied.length);

  // Change tracking on the clone: with nothing inherited, its first checkpoint holds the copied blocks (since its
  // creation); once it inherits the source's changes, exactly those (a backup clone's "clone-start").
  const c0 = await clone.snapshotDisks({ checkpoint: 'c0' });
  assert.equal(c0.changes[0]?.since, '');
  assert.deepEqual(blocksOf(c0.changes[0]!.bitmap), copied);
  await c0.release('abort');
  const inherited = new Uint32Array(32);
  inherited[0] = 1 << 7;
  clone.inheritChanges(0, { since: 'src-b1', bitmap: inherited });
  const start = await clone.snapshotDisks({ checkpoint: 'bk1-clone-start' });
  assert.deepEqual(start.changes.map((c) => c && [c.since, blocksOf(c.bitmap)]), [['src-b1', [7]]]);
  await start.release('commit');
  await clone.run({ isolateNetwork: true });
  t.diagnostic(
    `clone: ${s.rounds} rounds, QEMU sent ${s.bytesRaw} B, wire ${s.bytesWire} B (${(s.bytesRaw / s.bytesWire).toFixed(2)}x), downtime ${s.downtimeMs} ms ` +
      `(snapshot in the window ${s.snapshotMs.toFixed(1)} ms), QEMU total ${s.qemuTotalMs} ms, wall ${s.totalMs.toFixed(0)} ms, source resume ${s.resumeMs.toFixed(0)} ms; ` +
      `disk copy ${copy.bytes} B (${copy.blocks} blocks) in ${copy.ms.toFixed(0)} ms; rounds seen ${JSON.stringify(rounds.map((r) => [r.round, r.remainingBytes]))}`,
  );
  assert.ok(s.rounds >= 1 && s.bytesRaw > 0 && s.bytesWire > 0 && s.bytesWire < s.bytesRaw);
  assert.equal(s.relay.rawBytes, s.bytesRaw, 'the relay carried exactly what QEMU sent');
  assert.ok(s.downtimeMs > 0);
  assert.ok(rounds.length >= 1, 'rounds were reported');

  await checkMemory(cserial, 'clone');
  assert.equal(await diskcheck(cserial), before, 'the clone’s disk is the source’s at the switchover');
  // The clone's own writes are the changes since its start checkpoint.
  assert.equal((await cserial.command('disk 5', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=5');
  const own = await clone.snapshotDisks({ checkpoint: 'bk1' });
  assert.equal(own.changes[0]?.since, 'bk1-clone-start');
  const ownBlocks = blocksOf(own.changes[0]!.bitmap);
  assert.ok(ownBlocks.length >= 1 && ownBlocks.length <= 5, `5 guest writes hit ${ownBlocks.length} blocks`);
  await own.release('commit');
  // The chain is in the image headers too (a restarted QEMU opens the same disk): the clone's disk over its copy.
  const chain = await imageInfo(clone.diskFiles()[0]!.path, { backingChain: true, forceShare: true });
  assert.deepEqual(chain.map((c) => c.filename), [clone.diskFiles()[0]!.path, join(clone.diskFiles()[0]!.path, '..', 'disk0.base.qcow2')]);
  await checkMemory(serial, 'source after');
  await assertWorkloadRuns(serial, 'source');
  await assertWorkloadRuns(cserial, 'clone');
  assert.match(await diskcheck(serial), /^DISKCHECK ok /);
  cserial.close();
  await dst.destroy(clone.id);
  void src;
});

test('the destination killed mid-stream: runSourceClone names it, the source runs on', { timeout: 300_000 }, async (t) => {
  const { dst, vm, serial } = await setup();
  const clone = await prepareCloneTarget(dst, vm.spec, 'ckill', newIdentity('ckill'));
  const inc = await acceptMigration(clone);
  let sent = 0;
  let killed = false;
  const run = runSourceClone(
    vm,
    async (f) => {
      sent += f.length;
      if (!killed && sent > 8 * 1024 * 1024) {
        killed = true;
        process.kill(clone.pid, 'SIGKILL');
      }
      await inc.feed.write(f);
    },
    // Slow: the kill lands in the first pass.
    { downtimeLimitMs: 300, maxBandwidthBytesPerS: 32 * 1024 * 1024 },
  );
  await assert.rejects(run, (e: Error) => {
    t.diagnostic(`${e.name}: ${e.message}`);
    return e instanceof CloneFailedError && e.cause instanceof MigrationRelayError && e.cause.side === 'destination' && /relay destination side/.test(e.message);
  });
  assert.ok(killed);
  assert.deepEqual(await vm.qmpClient?.queryStatus(), { status: 'running', running: true });
  assert.equal(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'no overlay left behind');
  await checkMemory(serial, 'source after a failed clone');
  await assertWorkloadRuns(serial, 'source after a failed clone');
  await dst.destroy(clone.id);
});

test('the destination killed in the switchover window: migrate_cancel, the snapshot folded back, the source runs on', { timeout: 300_000 }, async (t) => {
  const { dst, vm, serial } = await setup();
  const clone = await prepareCloneTarget(dst, vm.spec, 'cwin', newIdentity('cwin'));
  // The target's end going away before the stream ended aborts the source, with a relay error as the reason: a
  // killed QEMU's socket closes cleanly in the window (nothing moves), so the feed's endedEarly comes after the
  // grace for the end of the stream.
  const inc = await acceptMigration(clone, { peerCloseGraceMs: 300 });
  let inWindow = false;
  let endedEarlyMs = 0;
  const run = runSourceClone(vm, (f) => inc.feed.write(f), {
    downtimeLimitMs: 300,
    maxBandwidthBytesPerS: 0,
    signal: inc.signal,
    onSwitchover: async () => {
      inWindow = true;
      assert.equal((await vm.qmpClient?.queryStatus())?.status, 'finish-migrate');
      assert.notEqual(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'the snapshot is taken');
      const k0 = performance.now();
      process.kill(clone.pid, 'SIGKILL');
      await inc.feed.endedEarly;
      endedEarlyMs = performance.now() - k0;
    },
  });
  await assert.rejects(run, (e: Error) => {
    t.diagnostic(`${e.name}: ${e.message}`);
    return e instanceof CloneFailedError && e.stage === 'switchover window' && e.cause instanceof MigrationRelayError && e.cause.side === 'destination';
  });
  assert.ok(inWindow);
  assert.ok(inc.signal.aborted, 'the incoming side aborted the source');
  t.diagnostic(`the feed signalled the early end ${endedEarlyMs.toFixed(0)} ms after the kill`);
  assert.deepEqual(await vm.qmpClient?.queryStatus(), { status: 'running', running: true });
  assert.equal(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'the overlay folded back');
  await checkMemory(serial, 'source after a failed switchover');
  await assertWorkloadRuns(serial, 'source after a failed switchover');
  assert.match(await diskcheck(serial), /^DISKCHECK ok /);
  await dst.destroy(clone.id);
});

test('downtime: the disk snapshot prepared during the first pass (only its transaction in the window) against taken whole in the window', { timeout: 300_000 }, async (t) => {
  const { dst, vm } = await setup();
  const runs: { inWindow: boolean; downtimeMs: number; snapshotMs: number; prepareMs: number }[] = [];
  // Alternating, so a drift in the host's load hits both alike.
  for (const inWindow of [true, false, true, false]) {
    const clone = await prepareCloneTarget(dst, vm.spec, `cdt${runs.length}`, newIdentity(`cdt${runs.length}`));
    const inc = await acceptMigration(clone);
    const s = await runSourceClone(vm, (f) => inc.feed.write(f), { downtimeLimitMs: 300, maxBandwidthBytesPerS: 0, snapshotInWindow: inWindow });
    await finishIncoming(clone, inc);
    await inc.feed.end().catch(() => undefined);
    await releaseFrozenDisks(s);
    assert.equal(vm.diskFiles()[0]!.top, vm.diskFiles()[0]!.path, 'the overlay folded back');
    assert.equal(s.frozen.length, 1);
    runs.push({ inWindow, downtimeMs: s.downtimeMs, snapshotMs: s.snapshotMs, prepareMs: s.snapshotPrepareMs });
    await dst.destroy(clone.id);
  }
  const show = (xs: typeof runs): string => xs.map((r) => `${r.downtimeMs} ms (snapshot ${r.snapshotMs.toFixed(1)} ms${r.inWindow ? '' : `, prepared in ${r.prepareMs.toFixed(0)} ms`})`).join(', ');
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const whole = runs.filter((r) => r.inWindow);
  const prep = runs.filter((r) => !r.inWindow);
  t.diagnostic(`downtime, snapshot taken whole in the window: ${show(whole)}`);
  t.diagnostic(`downtime, snapshot prepared (transaction only in the window): ${show(prep)}`);
  t.diagnostic(
    `mean downtime ${mean(whole.map((r) => r.downtimeMs)).toFixed(0)} → ${mean(prep.map((r) => r.downtimeMs)).toFixed(0)} ms; ` +
      `mean snapshot in the window ${mean(whole.map((r) => r.snapshotMs)).toFixed(1)} → ${mean(prep.map((r) => r.snapshotMs)).toFixed(1)} ms`,
  );
  assert.ok(mean(prep.map((r) => r.snapshotMs)) < mean(whole.map((r) => r.snapshotMs)), 'preparing shortens the snapshot in the window');
});

test('a linked clone on a shared datastore: a shareable snapshot, linkDisks after the migration, the frozen base stays shared', { timeout: 300_000 }, async (t) => {
  const { src, linked, vm, serial } = await setup();
  assert.equal((await serial.command('disk 20', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=20');
  const before = await diskcheck(serial);
  const frozenPath = vm.diskFiles()[0]!.path;
  const clone = await prepareCloneTarget(linked, vm.spec, 'clink', newIdentity('clink'), { cloneOf: vm.id });
  const cserial = await SerialConsole.connect(clone.serialSocketPath);
  consoles.push(cserial);
  const inc = await acceptMigration(clone);
  const s = await runSourceClone(vm, (f) => inc.feed.write(f), { downtimeLimitMs: 300, maxBandwidthBytesPerS: 0, snapshot: { shareable: true } });
  await finishIncoming(clone, inc);
  await inc.feed.end().catch(() => undefined);
  const chains = s.snapshot?.chains ?? [];
  assert.deepEqual(chains, [[`vms/${vm.id}/disk0.qcow2`]], 'the frozen chain, datastore-relative');
  await assert.rejects(clone.linkDisks([['../../etc/passwd']]), /not a datastore-relative path/);
  await clone.linkDisks(chains);
  await assert.rejects(clone.writeDiskBlocks(0, 0, Buffer.alloc(64 * 1024, 1)), /overlays a shared base/);
  // The source lets go of its snapshot: its overlay stays its disk, the frozen image a shared base below it.
  await releaseFrozenDisks(s);
  const overlay = vm.diskFiles()[0]!.path;
  assert.match(overlay, /disk0\.s\d+\.qcow2$/);
  assert.deepEqual(vm.storageUsage().map((u) => [u.id, u.shared]), [[`vms/${vm.id}/disk0.qcow2`, true], [`vms/${vm.id}/${basename(overlay)}`, false]]);
  clone.markComplete();
  await clone.run();
  t.diagnostic(`linked: downtime ${s.downtimeMs} ms, ${s.rounds} rounds, wall ${s.totalMs.toFixed(0)} ms`);
  await checkMemory(cserial, 'linked clone');
  const chain = await imageInfo(clone.diskFiles()[0]!.path, { backingChain: true, forceShare: true });
  assert.deepEqual(chain.map((c) => resolve(c.filename)), [clone.diskFiles()[0]!.path, frozenPath], 'the clone overlays the source’s frozen image');
  assert.deepEqual(clone.storageUsage().map((u) => [u.id, u.shared]), [[`vms/${vm.id}/disk0.qcow2`, true], [`vms/${clone.id}/disk0.qcow2`, false]], 'the base is the source’s, shared');
  assert.equal(await diskcheck(cserial), before);
  // Both write on: each into its own image, the shared base unchanged.
  assert.equal((await cserial.command('disk 5', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=5');
  assert.match(await diskcheck(cserial), /^DISKCHECK ok /);
  assert.equal((await serial.command('disk 5', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=5');
  assert.match(await diskcheck(serial), /^DISKCHECK ok /);
  await checkMemory(serial, 'source after a linked clone');
  // The source's later snapshots fold into its overlay, never into the shared base.
  const snap = await vm.snapshotDisks({ checkpoint: 'after-link' });
  await snap.release('commit');
  assert.deepEqual(vm.diskChains(), [[`vms/${vm.id}/disk0.qcow2`, `vms/${vm.id}/${basename(overlay)}`]]);
  // Destroying the source keeps the shared base (the clone reads through it); the clone runs on.
  assert.equal(await src.destroy(vm.id), true);
  assert.ok(existsSync(frozenPath), 'a shared base outlives its VM');
  assert.deepEqual(readdirSync(join(shared, 'vms', vm.id)), ['disk0.qcow2']);
  assert.match(await diskcheck(cserial), /^DISKCHECK ok /);
  cserial.close();
  await linked.destroy(clone.id);
  assert.ok(existsSync(frozenPath));
});
