/**
 * Backups when things go wrong: a clone host killed halfway through the upload,
 * agents restarted cleanly or killed (change tracking), a full repository disk,
 * an unreachable repository. Nothing half-done may become visible.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { eventually, startTestFleet } from './helpers/fleet.js';

const quiet = { dirtyRate: 0, pattern: 'uniform', seed: 1 };

test('a clone host killed halfway through a backup: no visible backup, and the next run reuses the stored chunks', async () => {
  const fleet = await LocalFleet.start({ mode: 'process', heartbeatMs: 300, agentMemoryMib: 2048 });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'big', host: 'host-a', memoryMib: 32, workload: quiet, disks: [{ name: 'disk0', sizeMib: 1536, image: 'big-img' }] });
    const job = await c.backup({ vm: vm.name, cloneHost: 'host-b' });
    // Kill the clone host once part of the disk is in the repository.
    await eventually(async () => {
      const j = await c.job(job.id);
      return j.phase === 'upload' && j.progress > 0.2 ? true : j.state === 'completed' || j.state === 'failed' ? false : undefined;
    }, 'upload under way', 60_000).then((ok) => assert.ok(ok, 'the backup was still uploading'));
    await fleet.killAgent('host-b');
    const failed = await c.waitJob(job.id, undefined, 30_000);
    assert.equal(failed.state, 'failed');
    assert.equal(failed.errorName, 'UnavailableError');
    assert.match(failed.error, /host 'host-b' went down/);
    assert.deepEqual(await c.backups(vm.name), [], 'no backup is listed');
    const manifests = await readdir(path.join(await fleet.repoDir(), 'backups')).catch(() => []);
    assert.deepEqual(manifests, [], 'no manifest was written');

    await fleet.startAgent('host-b');
    await fleet.waitHosts(['host-b']);
    // host-b kept the half-used clone across its restart; the coordinator removes it once host-b is back.
    await eventually(async () => ((await c.vms('host-b')).length === 0 ? true : undefined), 'leftover clone removed from host-b', 20_000);
    const again = await c.waitJob((await c.backup({ vm: vm.name, cloneHost: 'host-b' })).id, undefined, 120_000);
    assert.equal(again.state, 'completed', again.error);
    const s = again.backup!.result!.stats!;
    assert.ok(s.chunksReused > 0, `the retry reused ${s.chunksReused} chunks stored before the kill`);
    assert.equal((await c.backups(vm.name)).length, 1);
  } finally {
    await fleet.stop();
  }
});

test('the agent of a direct backup killed halfway: no visible backup; its VM comes back and the next run reuses the stored chunks', async () => {
  const fleet = await LocalFleet.start({ mode: 'process', heartbeatMs: 300, agentMemoryMib: 2048 });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'solo', host: 'host-a', memoryMib: 32, workload: quiet, disks: [{ name: 'disk0', sizeMib: 1536, image: 'solo-img' }] });
    const job = await c.backup({ vm: vm.name, direct: true });
    await eventually(async () => {
      const j = await c.job(job.id);
      return j.phase === 'upload' && j.progress > 0.2 ? true : j.state === 'completed' || j.state === 'failed' ? false : undefined;
    }, 'upload under way', 60_000).then((ok) => assert.ok(ok, 'the backup was still uploading'));
    await fleet.killAgent('host-a');
    const failed = await c.waitJob(job.id, undefined, 30_000);
    assert.equal(failed.state, 'failed');
    assert.match(failed.error, /source host 'host-a' went down/);
    assert.deepEqual(await c.backups(), []);

    await fleet.startAgent('host-a');
    await fleet.waitHosts(['host-a']);
    await eventually(async () => ((await c.vms('host-a')).some((v) => v.id === vm.id) ? true : undefined), 'VM reloaded');
    const again = await c.waitJob((await c.backup({ vm: vm.name, direct: true })).id, undefined, 120_000);
    assert.equal(again.state, 'completed', again.error);
    assert.ok(again.backup!.result!.stats!.chunksReused > 0, 'chunks stored before the kill are reused');
  } finally {
    await fleet.stop();
  }
});

test('change tracking survives a clean agent restart; after a kill the next backup is full and says why', async () => {
  const fleet = await LocalFleet.start({ mode: 'process', heartbeatMs: 300, agentMemoryMib: 2048 });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'tracked', host: 'host-a', memoryMib: 32, workload: { ...quiet, diskWriteRate: 200 }, disks: [{ name: 'disk0', sizeMib: 128, image: 'base' }] });
    const full = await c.waitJob((await c.backup({ vm: vm.name, direct: true })).id);
    assert.equal(full.state, 'completed', full.error);

    // A clean stop persists the tracking: the VM comes back with it.
    await fleet.stopAgent('host-a');
    await fleet.startAgent('host-a');
    await fleet.waitHosts(['host-a']);
    await eventually(async () => ((await c.vms('host-a')).some((v) => v.id === vm.id) ? true : undefined), 'VM reloaded');
    await c.runVm(vm.id);
    await sleep(300);
    const inc = await c.waitJob((await c.backup({ vm: vm.name, direct: true, incremental: true })).id);
    assert.equal(inc.state, 'completed', inc.error);
    assert.equal(inc.backup!.result!.kind, 'incremental', inc.backup!.result!.fullReason);

    // A kill loses it: never a wrong incremental.
    await fleet.killAgent('host-a');
    await fleet.startAgent('host-a');
    await fleet.waitHosts(['host-a']);
    await eventually(async () => ((await c.vms('host-a')).some((v) => v.id === vm.id) ? true : undefined), 'VM reloaded');
    const after = await c.waitJob((await c.backup({ vm: vm.name, direct: true, incremental: true })).id);
    assert.equal(after.state, 'completed', after.error);
    const r = after.backup!.result!;
    assert.equal(r.kind, 'full');
    assert.match(r.fullReason, /tracking .* lost/);
  } finally {
    await fleet.stop();
  }
});

test('a full repository disk: a clear error and no partial backup', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doppel-small-repo-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', dir]);
  const fleet = await startTestFleet({ repoDir: dir });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'fat', host: 'host-a', memoryMib: 32, workload: quiet, disks: [{ name: 'disk0', sizeMib: 256, image: 'fat-img' }] });
    const job = await c.waitJob((await c.backup({ vm: vm.name, direct: true })).id);
    assert.equal(job.state, 'failed');
    assert.equal(job.errorName, 'ResourceExhaustedError');
    assert.match(job.error, /disk full/);
    assert.match(job.error, new RegExp(dir));
    assert.deepEqual(await c.backups(), []);
    assert.deepEqual(await readdir(path.join(dir, 'backups')).catch(() => []), []);
    assert.deepEqual(await readdir(path.join(dir, 'tmp')).catch(() => []), [], 'no temp file left');
  } finally {
    await fleet.stop();
    execFileSync('umount', [dir]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('an unreachable repository: the backup is refused at once, nothing is paused', async () => {
  const fleet = await startTestFleet({ repository: '127.0.0.1:1' });
  try {
    const c = fleet.client;
    const vm = await c.createVm({ name: 'stranded', host: 'host-a', memoryMib: 16, workload: quiet });
    await assert.rejects(c.backup({ vm: vm.name }), (e: Error) => e.name === 'UnavailableError' && /repository at 127\.0\.0\.1:1 is unreachable/.test(e.message));
    assert.deepEqual(await c.jobs(), []);
  } finally {
    await fleet.stop();
  }
});
