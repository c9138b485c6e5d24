/**
 * The qemu driver end to end (issue 8): a fleet of agents running real QEMU guests (TCG when KVM does not work),
 * the real test guest, the coordinator, the repository. A live clone-backup whose memory travels as QEMU's own
 * migration stream over the agents' gRPC data plane (LZ4 frames); the clone's guest checks its memory; the source
 * runs on; the backup restores to a disk equal by hash; an incremental after guest writes; the target QEMU or the
 * target agent killed mid-stream; a bad QMP socket path.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Job } from '../cli/src/client.js';
import { QemuDriver, QemuVm } from '../agent/src/mod.js';
import { isQemuOf } from '../agent/src/drivers/qemu/qemu-vm.js';
import { readQemuVmRecord } from '../agent/src/drivers/qemu/vm-record.js';
import { eventually, startTestFleet } from './helpers/fleet.js';
import { ensureTestGuest, SerialConsole } from './helpers/guest.js';

const AREA_MIB = 64;
const RATE = 5_000;
const CMD_MS = 60_000;
const MEMCHECK = /^MEMCHECK (ok|fail).*/;

let fleet: LocalFleet;
let fleetStopped = false;
const consoles: SerialConsole[] = [];

before(async () => {
  const guest = await ensureTestGuest();
  fleet = await startTestFleet({
    agents: ['host-a', 'host-b'],
    qemu: { kernel: guest.kernel, initrd: guest.initrd, append: `console=ttyS0 doppel.mem_mib=${AREA_MIB} doppel.rate=${RATE} quiet`, accel: process.env.DOPPEL_QEMU_ACCEL ?? 'auto' },
  });
});

after(async () => {
  for (const c of consoles) c.close();
  if (fleetStopped) return;
  for (const v of await fleet.client.vms().catch(() => [])) await fleet.client.destroyVm(v.id).catch(() => undefined);
  await fleet.stop();
});

function qemuVm(host: string, vmId: string): QemuVm {
  const vm = fleet.agentObjects.get(host)?.driver.get(vmId);
  assert.ok(vm instanceof QemuVm, `vm ${vmId} is a qemu VM on ${host}`);
  return vm;
}

async function serialOf(host: string, vmId: string): Promise<SerialConsole> {
  const s = await SerialConsole.connect(qemuVm(host, vmId).serialSocketPath);
  consoles.push(s);
  return s;
}

async function memcheck(serial: SerialConsole, who: string): Promise<void> {
  const m = await serial.command('check', MEMCHECK, CMD_MS);
  assert.match(m[0], /^MEMCHECK ok /, `${who}: ${m[0]}`);
}

/** The guest's workload runs: its page counter moves. */
async function assertWalking(serial: SerialConsole, who: string): Promise<void> {
  const stats = async () => Number((await serial.command('stats', /^STATS walks=\d+ pages_written=(\d+)/, CMD_MS))[1]);
  const a = await stats();
  await sleep(500);
  const b = await stats();
  assert.ok(b > a, `${who}: the guest runs on (${a} -> ${b} pages written)`);
}

async function createGuest(name: string, host = 'host-a') {
  const vm = await fleet.client.createVm({ name, host, memoryMib: 256, vcpus: 1, disks: [{ name: 'disk0', sizeMib: 64, image: '' }] });
  const serial = await serialOf(host, vm.id);
  await fleet.client.runVm(vm.id);
  await serial.waitFor(new RegExp(`DOPPEL-GUEST READY mem_mib=${AREA_MIB}`), 120_000);
  return { vm, serial };
}

async function backup(vm: string, opts: { incremental?: boolean; keepClone?: boolean } = {}): Promise<Job> {
  const c = fleet.client;
  const job = await c.waitJob((await c.backup({ vm, cloneHost: 'host-b', onNonConvergence: 'warn', ...opts })).id, undefined, 180_000);
  assert.equal(job.state, 'completed', `${job.errorName}: ${job.error}`);
  return job;
}

test('a live clone-backup of a real guest: the clone checks its memory, the source runs on, the restore is equal by hash, an incremental follows guest writes', { timeout: 600_000 }, async () => {
  const c = fleet.client;
  const { vm, serial } = await createGuest('qguest');
  assert.equal((await serial.command('disk 40', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=40');
  const hosts = await c.hosts();
  assert.ok(hosts.every((h) => h.driver === 'qemu' && (h.accel === 'kvm' || h.accel === 'tcg')), `accel: ${hosts.map((h) => h.accel).join(',')}`);

  // The clone-backup, keeping the clone to check its guest.
  const job = await backup(vm.name, { keepClone: true });
  const b = job.backup!.result!;
  assert.equal(b.mode, 'clone');
  assert.equal(b.kind, 'full');
  const clone = (await c.vms('host-b')).find((v) => v.cloneOf === vm.id);
  assert.ok(clone, 'the clone is kept on host-b');
  assert.equal(clone.state, 'running');
  const cserial = await serialOf('host-b', clone.id);
  await memcheck(cserial, 'clone');
  assert.match((await cserial.command('diskcheck', /^(DISKCHECK|ERR) .*/, CMD_MS))[0], /^DISKCHECK ok blocks=\d+ max_seq=40$/);
  await assertWalking(cserial, 'clone');
  await memcheck(serial, 'source');
  await assertWalking(serial, 'source');
  assert.equal(qemuVm('host-a', vm.id).state, 'running');
  assert.ok(b.stats!.sourcePausedMs > 0, `source paused ${b.stats!.sourcePausedMs} ms`);

  // The restore reads back equal by hash.
  const rj = await c.waitJob((await c.restore({ backup: b.id, toHost: 'host-b', asName: 'qguest-restored' })).id, undefined, 120_000);
  assert.equal(rj.state, 'completed', rj.error);
  assert.deepEqual(rj.restore!.diskHashes, b.disks.map((d) => d.contentHash));

  // Guest writes, then an incremental: only the changed chunks, and it restores equal too.
  assert.equal((await serial.command('disk 30', /^(DISK|ERR) .*/, CMD_MS))[0], 'DISK wrote=30');
  const inc = (await backup(vm.name, { incremental: true })).backup!.result!;
  assert.equal(inc.kind, 'incremental', inc.fullReason);
  assert.equal(inc.baseId, b.id);
  assert.ok(inc.stats!.chunksNew > 0, 'the written blocks are in the incremental');
  assert.notDeepEqual(inc.disks.map((d) => d.contentHash), b.disks.map((d) => d.contentHash));
  const rj2 = await c.waitJob((await c.restore({ backup: inc.id, toHost: 'host-b', asName: 'qguest-inc' })).id, undefined, 120_000);
  assert.equal(rj2.state, 'completed', rj2.error);
  assert.deepEqual(rj2.restore!.diskHashes, inc.disks.map((d) => d.contentHash));
});

/** Files and processes the qemu driver of `host` holds for `vmId`. */
function leftovers(host: string, vmId: string): string[] {
  const agent = fleet.agentObjects.get(host);
  const found: string[] = [];
  if (agent?.driver.get(vmId)) found.push('driver record');
  const driver = agent?.driver;
  if (driver instanceof QemuDriver) {
    const ds = driver.datastore.path;
    if (existsSync(join(ds, 'vms', vmId))) found.push(`datastore dir (${readdirSync(join(ds, 'vms', vmId)).join(',')})`);
  }
  return found;
}

test('the target QEMU killed mid-stream: the source runs on, the job fails clearly, the half-made clone is gone', { timeout: 300_000 }, async (t) => {
  const c = fleet.client;
  const { vm, serial } = await createGuest('qvictim');
  // 8 Mbit/s: the stream takes many seconds, time to kill the target mid-way.
  const job = await c.clone({ vm: vm.name, targetHost: 'host-b', onNonConvergence: 'warn', maxBandwidthMbps: 8 });
  const target = await eventually(async () => fleet.agentObjects.get('host-b')?.driver.list().find((v) => v.cloneOf === vm.id), 'the clone on host-b', 30_000);
  assert.ok(target instanceof QemuVm);
  const pid = target.pid;
  await sleep(1500);
  assert.ok(isQemuOf(pid, target.qmpSocketPath), 'the clone QEMU runs');
  process.kill(pid, 'SIGKILL');
  const failed = await c.waitJob(job.id, undefined, 60_000);
  assert.equal(failed.state, 'failed');
  assert.match(failed.error, /live clone of vm .* failed|migration/i, failed.error);
  t.diagnostic(`${failed.errorName}: ${failed.error}`);
  await memcheck(serial, 'source after a failed clone');
  await assertWalking(serial, 'source');
  assert.equal(qemuVm('host-a', vm.id).diskChains().every((ch) => ch.length === 1), true, 'no snapshot overlay left on the source');
  await eventually(async () => (leftovers('host-b', target.id).length === 0 ? true : undefined), 'the half-made clone removed', 30_000);
  await eventually(async () => ((await c.vms('host-b')).some((v) => v.id === target.id) ? undefined : true), 'the coordinator forgot the clone');
});

test('the target agent killed mid-stream: the source runs on, the job fails clearly, the clone goes when the agent comes back', { timeout: 300_000 }, async (t) => {
  const c = fleet.client;
  await fleet.startAgent('host-c', { process: true });
  await fleet.waitHosts(['host-a', 'host-b', 'host-c']);
  const { vm, serial } = await createGuest('qvictim2');
  const job = await c.clone({ vm: vm.name, targetHost: 'host-c', onNonConvergence: 'warn', maxBandwidthMbps: 8 });
  const target = await eventually(async () => (await c.vms('host-c')).find((v) => v.cloneOf === vm.id), 'the clone on host-c', 30_000);
  await sleep(1500);
  await fleet.killAgent('host-c');
  const failed = await c.waitJob(job.id, undefined, 60_000);
  assert.equal(failed.state, 'failed');
  t.diagnostic(`${failed.errorName}: ${failed.error}`);
  await memcheck(serial, 'source after its target agent died');
  await assertWalking(serial, 'source');
  assert.equal(qemuVm('host-a', vm.id).diskChains().every((ch) => ch.length === 1), true, 'no snapshot overlay left on the source');
  // The agent comes back: the clone never became complete, so its QEMU and files go.
  const dataDir = join(await fleet.dataRoot, 'host-c');
  const rec = readQemuVmRecord(join(dataDir, 'vms', target.id));
  await fleet.startAgent('host-c', { process: true });
  await eventually(async () => ((await c.vms('host-c')).some((v) => v.id === target.id) ? undefined : true), 'the half-made clone gone after the restart', 30_000);
  assert.equal(existsSync(join(dataDir, 'vms', target.id)), false, 'its record is gone');
  if (rec) assert.equal(isQemuOf(rec.pid, rec.qmpSocket), false, 'its QEMU is gone');
  await fleet.stopAgent('host-c');
});

test('adopting by a bad QMP socket path is a clear error (API and driver)', async () => {
  const c = fleet.client;
  await assert.rejects(c.adoptVm({ host: 'host-a', qmpSocket: '/nonexistent/qmp.sock', name: 'ghost' }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'NOT_FOUND', e.message);
    assert.match(e.message, /\/nonexistent\/qmp\.sock/);
    return true;
  });
  await assert.rejects(c.adoptVm({ host: 'host-a', qmpSocket: 'relative.sock', name: 'ghost' }), (e: Error & { code?: string }) => e.code === 'INVALID_ARGUMENT');
  assert.equal((await c.vms()).some((v) => v.name === 'ghost'), false, 'nothing was adopted');
  const driver = fleet.agentObjects.get('host-a')?.driver;
  assert.ok(driver instanceof QemuDriver);
  await assert.rejects(driver.adopt('/nonexistent/qmp.sock', 'ghost'), (e: Error) => e.name === 'NotFoundError' && /\/nonexistent\/qmp\.sock/.test(e.message));
});

test('a clone with --verify is refused on qemu; stopping a private fleet kills the QEMUs its agents started', { timeout: 180_000 }, async () => {
  await createGuest('qleft');
  // (While it runs: a clone with --verify is refused up front, with the reason.)
  await assert.rejects(fleet.client.clone({ vm: 'qleft', targetHost: 'host-b', verify: true }), (e: Error) => /FAILED_PRECONDITION|memory hashes/.test(`${e.name} ${e.message}`) && /qemu driver cannot take/.test(e.message));
  const root = await fleet.dataRoot;
  const qemusOfFleet = (): number[] =>
    readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((pid) => {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
          return cmd.startsWith('qemu-system') && cmd.includes(root);
        } catch {
          return false;
        }
      })
      .map(Number);
  assert.ok(qemusOfFleet().length > 0, 'the guest runs in a QEMU under the fleet');
  for (const c of consoles) c.close();
  fleetStopped = true;
  await fleet.stop();
  await eventually(async () => (qemusOfFleet().length === 0 ? true : undefined), 'no QEMU of the fleet left', 10_000);
});
