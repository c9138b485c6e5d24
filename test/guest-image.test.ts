/**
 * The real test guest (scripts/build-test-guest.sh) under QEMU on TCG: it boots, checks its own memory, writes its
 * disk, survives a direct live migration with its memory intact on both sides, and its checker catches a stale page.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { QmpClient, QmpError } from '../agent/src/drivers/qemu/qmp.js';
import { ensureTestGuest, SerialConsole, type TestGuest } from './helpers/guest.js';

const execFileP = promisify(execFile);
const MEM_MIB = 256;
const AREA_MIB = 64;
const RATE = 20_000;
const BOOT_MS = 90_000;
const CMD_MS = 30_000;

/** QMP on a QEMU this test just spawned: its socket appears a moment after the process. */
async function connectQmp(socketPath: string): Promise<QmpClient> {
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      return await QmpClient.connect(socketPath);
    } catch (e) {
      if (Date.now() > end) throw e;
      await sleep(20);
    }
  }
}

interface MigrationInfo {
  status?: string;
  'total-time'?: number;
  downtime?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { transferred?: number; total?: number; 'dirty-sync-count'?: number; mbps?: number; normal?: number; 'dirty-pages-rate'?: number };
}

// ---- QEMU processes ----

interface Vm {
  name: string;
  proc: ChildProcess;
  qmp: QmpClient;
  serial: SerialConsole;
  stderr: string[];
}

const vms: Vm[] = [];
const procs: ChildProcess[] = [];
let tmp: string | undefined;

after(async () => {
  for (const vm of vms) {
    vm.serial.close();
    await vm.qmp.close();
  }
  for (const proc of procs) {
    if (proc.exitCode !== null || proc.signalCode !== null) continue;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

function qemuArgs(guest: TestGuest, dir: string, name: string, extra: string[] = []): string[] {
  return [
    '-accel', 'tcg',
    '-M', 'q35',
    '-m', String(MEM_MIB),
    '-nographic', '-nodefaults', '-no-user-config',
    '-kernel', guest.kernel,
    '-initrd', guest.initrd,
    '-append', `console=ttyS0 doppel.mem_mib=${AREA_MIB} doppel.rate=${RATE} quiet`,
    '-chardev', `socket,id=s0,path=${path.join(dir, `${name}.serial`)},server=on,wait=off`,
    '-serial', 'chardev:s0',
    '-qmp', `unix:${path.join(dir, `${name}.qmp`)},server=on,wait=off`,
    '-drive', `file=${path.join(dir, `${name}.qcow2`)},if=none,id=d0,format=qcow2`,
    '-device', 'virtio-blk-pci,drive=d0',
    ...extra,
  ];
}

async function startVm(guest: TestGuest, dir: string, name: string, extra: string[] = []): Promise<Vm> {
  const proc = spawn('qemu-system-x86_64', qemuArgs(guest, dir, name, extra), { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(proc);
  const stderr: string[] = [];
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (s: string) => stderr.push(s));
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code, signal) => reject(new Error(`QEMU ${name} exited (${code ?? signal}): ${stderr.join('')}`))),
  );
  exited.catch(() => undefined);
  const [serial, qmp] = await Promise.race([
    Promise.all([SerialConsole.connect(path.join(dir, `${name}.serial`)), connectQmp(path.join(dir, `${name}.qmp`))]),
    exited,
  ]);
  const vm = { name, proc, qmp, serial, stderr };
  vms.push(vm);
  return vm;
}

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

const MEMCHECK_OK = /MEMCHECK ok pages=(\d+) value=(\d+)/;
const MEMCHECK_ANY = /MEMCHECK (ok|fail) .*/;

async function checkMemory(vm: Vm): Promise<number> {
  const m = await vm.serial.command('check', MEMCHECK_ANY, CMD_MS);
  assert.match(m[0], MEMCHECK_OK, `${vm.name}: ${m[0]}`);
  const ok = MEMCHECK_OK.exec(m[0])!;
  assert.equal(Number(ok[1]), (AREA_MIB * 1024) / 4, `${vm.name}: pages in the test area`);
  return Number(ok[2]);
}

test('the test guest boots on TCG, survives a direct live migration, and its checker catches a stale page', { timeout: 600_000 }, async (t) => {
  const t0 = Date.now();
  const guest = await ensureTestGuest();
  t.diagnostic(`guest built or found in ${Date.now() - t0} ms: ${guest.dir}`);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'doppel-guest-'));
  const dir = tmp;

  await execFileP('qemu-img', ['create', '-q', '-f', 'qcow2', path.join(dir, 'src.qcow2'), '64M']);
  const bootStart = Date.now();
  const src = await startVm(guest, dir, 'src');
  await src.serial.waitFor(new RegExp(`DOPPEL-GUEST READY mem_mib=${AREA_MIB} rate=${RATE}`), BOOT_MS);
  t.diagnostic(`source booted to READY in ${Date.now() - bootStart} ms`);

  // Boot-time sanity: memory, commands, the disk.
  const v0 = await checkMemory(src);
  assert.match((await src.serial.command('stats', /STATS .*/, CMD_MS))[0], /^STATS walks=\d+ pages_written=\d+$/);
  assert.equal((await src.serial.command('frobnicate', /ERR .*/, CMD_MS))[0], 'ERR unknown');
  assert.equal((await src.serial.command('disk 10', /DISK .*|ERR .*/, CMD_MS))[0], 'DISK wrote=10');
  assert.equal((await src.serial.command('sync', /SYNC .*/, CMD_MS))[0], 'SYNC ok');
  assert.match((await src.serial.command('diskcheck', /DISKCHECK .*|ERR .*/, CMD_MS))[0], /^DISKCHECK ok blocks=10 max_seq=10$/);

  // The destination gets its own copy of the disk (the guest no longer writes it): two QEMUs cannot share one
  // writable image, and the source must be able to go on after the migration.
  await copyFile(path.join(dir, 'src.qcow2'), path.join(dir, 'dst.qcow2'));
  const dst = await startVm(guest, dir, 'dst', ['-S', '-incoming', 'defer']);
  const migSock = path.join(dir, 'migrate.sock');
  await dst.qmp.execute('migrate-incoming', { uri: `unix:${migSock}` });

  const params = (await src.qmp.execute('query-migrate-parameters')) as Record<string, unknown>;
  t.diagnostic(`migration parameters: max-bandwidth=${String(params['max-bandwidth'])} downtime-limit=${String(params['downtime-limit'])}`);

  const migStart = Date.now();
  await src.qmp.execute('migrate', { uri: `unix:${migSock}` });
  const info = await until('the migration to complete', 300_000, async () => {
    const i = (await src.qmp.execute('query-migrate')) as MigrationInfo;
    if (i.status === 'failed' || i.status === 'cancelled') throw new Error(`migration ${i.status}: ${i['error-desc'] ?? ''}`);
    return i.status === 'completed' ? i : undefined;
  });
  const migMs = Date.now() - migStart;
  t.diagnostic(
    `direct migration: ${migMs} ms wall, total-time ${info['total-time']} ms, downtime ${info.downtime} ms, ` +
      `ram.transferred ${info.ram?.transferred} bytes, dirty-sync-count ${info.ram?.['dirty-sync-count']}, ` +
      `mbps ${info.ram?.mbps}`,
  );

  // The destination waits paused (-S) once the incoming migration is done; then it runs on with intact memory.
  await until('the destination to finish receiving', 60_000, async () => {
    const s = (await dst.qmp.execute('query-status')) as { status: string };
    return s.status === 'inmigrate' ? undefined : s.status;
  });
  await dst.qmp.execute('cont');
  const vDst = await checkMemory(dst);
  assert.ok(vDst >= v0, `the destination's walk count (${vDst}) goes on from the source's (${v0})`);
  assert.match((await dst.serial.command('diskcheck', /DISKCHECK .*|ERR .*/, CMD_MS))[0], /^DISKCHECK ok blocks=10 max_seq=10$/);
  await sleep(500);
  await checkMemory(dst);

  // The source runs on too: `cont` may answer "not finalized" for a moment.
  await until('the source to continue', 30_000, async () => {
    try {
      await src.qmp.execute('cont');
      return true;
    } catch (e) {
      if (e instanceof QmpError) return undefined;
      throw e;
    }
  });
  await checkMemory(src);

  // Negative self-test: a page left one walk behind, as a missed dirty page would be, fails the check.
  const corrupt = await src.serial.command('corrupt', /CORRUPT page=(\d+)|ERR .*/, CMD_MS);
  assert.match(corrupt[0], /^CORRUPT page=\d+$/);
  const fail = await src.serial.command('check', MEMCHECK_ANY, CMD_MS);
  assert.match(fail[0], /^MEMCHECK fail pages=16384 steps=\d+ first_bad=\d+ bad_content=0$/);
  // The destination, a separate machine now, is unaffected.
  await checkMemory(dst);
});
