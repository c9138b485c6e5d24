/** The command line, as a user runs it: help texts, errors, and the demo contract (compiled build). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import { createInterface } from 'node:readline';
import { startTestFleet } from './helpers/fleet.js';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const doppel = path.join(root, 'bin', 'doppel.js');

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [doppel, ...args], { cwd: root, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('--help explains every command', async () => {
  const top = await cli(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['up', 'demo', 'agent', 'coordinator', 'hosts', 'vms', 'vm', 'clone', 'jobs', 'events', 'backup', 'backups', 'restore', 'cluster', 'verify', 'repo']) {
    assert.match(top.stdout, new RegExp(`\\n  ${c} `));
  }
  const backup = await cli(['backup', '--help']);
  for (const o of ['--direct', '--incremental', '--keep-clone', '--wait', '--json']) assert.match(backup.stdout, new RegExp(o));
  const restore = await cli(['restore', '--help']);
  assert.match(restore.stdout, /--to HOST/);
  assert.match(restore.stdout, /--as NAME/);
  assert.match((await cli(['verify', '--help'])).stdout, /re-hash every chunk/);
  assert.match((await cli(['repo', '--help'])).stdout, /--dir DIR/);
  const clone = await cli(['clone', '--help']);
  assert.match(clone.stdout, /--max-downtime-ms N/);
  assert.match(clone.stdout, /--on-non-convergence/);
  for (const o of ['--hot', '--copy-disks', '--hostname NAME']) assert.match(clone.stdout, new RegExp(o));
  const vm = await cli(['vm', '--help']);
  for (const o of ['--hostname NAME', '--mac MAC']) assert.match(vm.stdout, new RegExp(o));
  assert.match(top.stdout, /\n {2}job +.*job cancel ID/);
  assert.match((await cli(['job', '--help'])).stdout, /doppel job cancel ID: cancel a running clone or backup/);
  const agent = await cli(['agent', '--help']);
  assert.match(agent.stdout, /--host NAME/);
  assert.match(agent.stdout, /--cluster NAME/);
  for (const o of ['--to-cluster NAME', '--map KIND:A=B', '--dry-run']) assert.match(restore.stdout, new RegExp(o));
  const cluster = await cli(['cluster', '--help']);
  for (const o of ['cluster add NAME', '--network NAME=BRIDGE', '--datastore NAME=PATH', '--cpu-model MODEL', 'cluster show NAME', 'cluster list']) assert.match(cluster.stdout, new RegExp(o));
});

test('usage errors and an unreachable coordinator give clear messages', async () => {
  const bad = await cli(['clone', 'x', '--max-downtime-ms', 'soon']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-downtime-ms must be a whole number/);
  const unknown = await cli(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  const down = await cli(['hosts', '--coordinator', '127.0.0.1:1']);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /UnavailableError: coordinator 127.0.0.1:1/);
});

test('demo --json: the default clone-backup scenario on a private fleet in separate processes, one JSON object on the last line', async () => {
  const r = await cli(['demo', '--json', '--vm-memory-mib', '64', '--dirty-rate', '10000', '--pattern', 'uniform']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const last = r.stdout.trim().split('\n').at(-1)!;
  type Fields = Record<string, unknown>;
  const out = JSON.parse(last) as { ok: boolean; scenario: string; backup: Fields; incremental: Fields; restore: Fields; verify: Fields };
  assert.equal(out.ok, true);
  assert.equal(out.scenario, 'clone-backup');
  for (const k of ['sourcePausedMs', 'bytesRead', 'bytesStored', 'chunksNew', 'chunksReused', 'diskHash']) assert.ok(k in out.backup, `backup.${k}`);
  assert.match(String(out.backup.diskHash), /^[0-9a-f]{64}$/);
  assert.equal(out.restore.diskHash, out.backup.diskHash, 'the restored disk equals the backed-up snapshot');
  assert.equal(out.verify.badChunks, 0);
  assert.equal(out.incremental.kind, 'incremental');
  assert.ok((out.incremental.chunksNew as number) <= (out.backup.chunksNew as number));
});

test('demo --scenario clone: the live clone alone', async () => {
  const r = await cli(['demo', '--scenario', 'clone', '--json', '--vm-memory-mib', '64', '--dirty-rate', '10000', '--pattern', 'uniform']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; scenario: string; clone: Record<string, unknown> };
  assert.equal(out.ok, true);
  assert.equal(out.scenario, 'clone');
  for (const k of ['rounds', 'pagesPerRound', 'bytesRaw', 'bytesWire', 'downtimeMs', 'totalMs', 'sourceHash', 'cloneHash']) {
    assert.ok(k in out.clone, `clone.${k}`);
  }
  assert.equal(out.clone.sourceHash, out.clone.cloneHash);
});

test('demo --scenario snapshot-pair: a pair with one timestamp, a storage-only update, a revert equal by hash', async () => {
  const r = await cli(['demo', '--scenario', 'snapshot-pair', '--json', '--vm-memory-mib', '64', '--disk-mib', '64', '--disk-write-rate', '500']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  type Out = { ok: boolean; pair: Record<string, string>; update: Record<string, unknown>; revert: Record<string, string> };
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Out;
  assert.equal(out.ok, true);
  for (const k of ['storageId', 'metadataId', 'storageTimestamp', 'metadataTimestamp', 'metadataStore']) assert.ok(out.pair[k], `pair.${k}`);
  assert.equal(out.pair.storageTimestamp, out.pair.metadataTimestamp);
  assert.match(out.pair.metadataStore!, /^nats-kv:\/\/doppel-snapshot-meta\//);
  assert.equal(out.update.linkedMetadataId, out.pair.metadataId);
  assert.equal(out.update.metadataRevisionUnchanged, true);
  assert.ok(out.update.storageId);
  assert.equal(out.revert.diskHash, out.revert.expectedDiskHash);
});

test('demo --scenario hot-clone: the frozen image by hash, every buffered write merged, no suspension, a shared base, new identity', async () => {
  const r = await cli(['demo', '--scenario', 'hot-clone', '--json', '--vm-memory-mib', '64', '--disk-mib', '64', '--disk-write-rate', '300']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  type Out = { ok: boolean; hot: Record<string, unknown> };
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Out;
  assert.equal(out.ok, true);
  const h = out.hot;
  assert.match(String(h.frozenHash), /^[0-9a-f]{64}$/);
  assert.equal(h.cloneHash, h.frozenHash);
  assert.ok(Number(h.bufferedWrites) > 0);
  assert.equal(h.mergedWrites, h.bufferedWrites);
  assert.equal(typeof h.sourceStallMs, 'number');
  assert.equal(h.sourceSuspended, false);
  assert.ok(Number(h.sharedBaseBytes) > 0);
  assert.ok(Number(h.cloneOverlayBytes) > 0 && Number(h.cloneOverlayBytes) < Number(h.sharedBaseBytes));
  assert.match(String(h.sourceMac), /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.match(String(h.cloneMac), /^52:54:00(:[0-9a-f]{2}){3}$/);
  assert.notEqual(h.cloneMac, h.sourceMac);
});

test('demo --scenario bypass-backup: equal tokens after a restore, an incremental, and different tokens without the revert', async () => {
  const r = await cli(['demo', '--scenario', 'bypass-backup', '--json', '--vm-memory-mib', '32', '--disk-mib', '64', '--disk-write-rate', '100']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  type Out = { ok: boolean; bypass: Record<string, unknown>; restore: Record<string, number>; incremental: Record<string, unknown>; noRevert: Record<string, number> };
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Out;
  assert.equal(out.ok, true);
  assert.ok(String(out.bypass.t1) < String(out.bypass.t2));
  assert.ok(Number(out.bypass.blocksReverted) > 0);
  assert.ok(out.restore.imageToken! > 0);
  assert.equal(out.restore.imageToken, out.restore.bypassToken);
  assert.equal(out.incremental.kind, 'incremental');
  assert.equal(out.incremental.imageToken, out.incremental.bypassToken);
  assert.notEqual(out.noRevert.imageToken, out.noRevert.bypassToken);
});

test('demo --scenario cross-cluster-restore: a plan of changes, applied in the other cluster, the disk equal by hash', async () => {
  const r = await cli(['demo', '--scenario', 'cross-cluster-restore', '--json', '--vm-memory-mib', '64', '--disk-mib', '64', '--dirty-rate', '5000']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  type Out = { ok: boolean; plan: { changes: { kind: string; to: string }[] }; restore: Record<string, string>; backup: Record<string, string>; impossible: { error: string } };
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Out;
  assert.equal(out.ok, true);
  assert.ok(Array.isArray(out.plan.changes) && out.plan.changes.length > 0);
  assert.deepEqual(
    out.plan.changes.filter((c) => c.kind !== 'path').map((c) => [c.kind, c.to]),
    [['network', 'production'], ['datastore', 'b-fast'], ['cpu-model', 'Broadwell']],
  );
  assert.equal(out.restore.cluster, 'site-b');
  assert.equal(out.restore.network, 'production');
  assert.equal(out.restore.cpuModel, 'Broadwell');
  assert.match(out.restore.datastorePath!, /b-fast$/);
  assert.equal(out.restore.diskHash, out.backup.diskHash);
  assert.match(out.impossible.error, /VLAN 20/);
});

test('doppel cluster add|show|list and restore --dry-run, as a user types them', async () => {
  const fleet = await startTestFleet({ hosts: { 'host-a': { cluster: 'lab', datastore: 'd1' }, 'host-b': { cluster: 'lab', datastore: 'd2' } } });
  try {
    const co = ['--coordinator', fleet.grpcAddr];
    const d1 = await fleet.datastorePath('d1');
    const d2 = await fleet.datastorePath('d2');
    const add = await cli(['cluster', 'add', 'lab', '--network', 'prod=br0:20', '--datastore', `d1=${d1}`, '--datastore', `d2=${d2}:4096`, '--cpu-model', 'Skylake-Server', ...co]);
    assert.equal(add.code, 0, add.stderr);
    assert.match(add.stdout, /cluster lab \(registered/);
    assert.match(add.stdout, /d2 .*4096 MiB.*host-b/);
    assert.equal((await cli(['cluster', 'add', 'lab', '--cpu-model', 'qemu64', ...co])).code, 1, 'a second add needs --replace');
    const list = JSON.parse((await cli(['cluster', 'list', '--json', ...co])).stdout) as { name: string; registered: boolean }[];
    assert.deepEqual(list.map((c) => [c.name, c.registered]), [['lab', true]]);
    assert.match((await cli(['cluster', 'show', 'lab', ...co])).stdout, /prod +br0 +20/);
    assert.equal((await cli(['vm', 'create', 'web', '--host', 'host-a', '--memory-mib', '32', '--disk', 'disk0:16:base', '--network', 'prod', ...co])).code, 0);
    const bk = await cli(['backup', 'web', '--direct', '--wait', '--json', ...co]);
    assert.equal(bk.code, 0, bk.stderr);
    const id = (JSON.parse(bk.stdout) as { backup: { result: { id: string } } }).backup.result.id;
    const plan = await cli(['restore', id, '--to-cluster', 'lab', '--dry-run', ...co]);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /no changes: the destination matches the save set/);
    const other = await cli(['restore', id, '--to', 'host-b', '--dry-run', ...co]);
    assert.match(other.stdout, /datastore +datastore +d1 +d2/);
    const impossible = await cli(['restore', id, '--to-cluster', 'lab', '--map', 'net:prod=nowhere', '--dry-run', ...co]);
    assert.equal(impossible.code, 1);
    assert.match(impossible.stdout, /cannot be restored there \(1 problem/);
    assert.equal((await cli(['restore', id, '--to-cluster', 'lab', '--map', 'bogus', '--dry-run', ...co])).code, 2);
  } finally {
    await fleet.stop();
  }
});

test('doppel repo serve: a standalone repository that a coordinator started with --repository uses', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doppel-repo-serve-'));
  // Outside `doppel up` and the demo, plaintext needs saying so.
  const refused = spawnSync(process.execPath, [doppel, 'repo', 'serve', '--dir', dir, '--listen', '127.0.0.1:0'], { encoding: 'utf8' });
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /mutual TLS is required: give --pki DIR .* or --insecure/);
  const child = spawn(process.execPath, [doppel, 'repo', 'serve', '--dir', dir, '--listen', '127.0.0.1:0', '--insecure', '--ready-line'], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const ready = await new Promise<{ repository: string }>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout });
      rl.on('line', (l) => {
        try {
          const v = JSON.parse(l) as { ready?: boolean; repository: string };
          if (v.ready) resolve(v);
        } catch {
          // a log line
        }
      });
      child.once('exit', (code) => reject(new Error(`repo serve exited with ${code}`)));
    });
    const fleet = await startTestFleet({ repository: ready.repository });
    try {
      const c = fleet.client;
      await c.createVm({ name: 'stored-elsewhere', host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: 16, image: 'base' }] });
      const job = await c.waitJob((await c.backup({ vm: 'stored-elsewhere', direct: true })).id);
      assert.equal(job.state, 'completed', job.error);
      const b = job.backup!.result!;
      assert.equal(b.repository, ready.repository);
      assert.deepEqual(await readdir(path.join(dir, 'backups')), [b.id], 'the manifest is in the standalone repository');
      assert.equal((await c.verify(b.id)).bad.length, 0);
    } finally {
      await fleet.stop();
    }
  } finally {
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
});

test('demo --scenario qemu-clone-backup: a real guest on QEMU, its clone checks its memory, the source runs on, the restore is equal by hash; no QEMU left', async () => {
  const r = await cli(['demo', '--scenario', 'qemu-clone-backup', '--json', '--disk-mib', '64', '--dirty-rate', '5000']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  type Fields = Record<string, unknown>;
  const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; qemu: Fields; clone: Fields; backup: Fields; incremental: Fields; restore: Fields; verify: Fields };
  assert.equal(out.ok, true);
  assert.match(String(out.qemu.accel), /^(kvm|tcg)$/);
  assert.equal(out.qemu.guestMemoryCheck, 'ok');
  assert.equal(out.qemu.sourceRunning, true);
  assert.ok(Number(out.clone.rounds) >= 1 && Number(out.clone.bytesWire) > 0 && Number(out.clone.bytesWire) < Number(out.clone.bytesRaw));
  assert.equal(out.backup.mode, 'clone');
  assert.equal(out.incremental.kind, 'incremental');
  assert.equal(out.restore.diskHash, out.backup.diskHash);
  assert.equal(out.restore.guestDiskCheck, 'ok');
  assert.equal(out.verify.badChunks, 0);
  const left = spawnSync('pgrep', ['-f', 'process=doppel-demo-qemu'], { encoding: 'utf8' }).stdout.trim();
  assert.equal(left, '', 'the demo leaves no QEMU running');
});
