/**
 * Scenario `qemu-clone-backup` (seed 000 on a real hypervisor): the agents run the qemu driver (KVM when it
 * works, else TCG) and the VM is the real test guest, whose program fills its memory with a verifiable pattern,
 * dirties pages at a set rate and checks its own memory on command over its serial console. The VM is backed up
 * through a live clone on host-b: QEMU's own migration stream travels between the agents over the gRPC data
 * plane in LZ4 frames, the disk becomes point-in-time in the paused switchover window, and the backup is made from
 * the clone's disk snapshot. The clone's guest then checks its memory, the source runs on, an incremental follows
 * the guest's disk writes, and the backup is restored and verified.
 */
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError } from '../../../shared/src/mod.js';
import type { LocalFleet, LocalFleetOptions } from '../fleet/local-fleet.js';
import type { Job } from '../client.js';
import { printBackupJob, waitWithProgress } from '../commands/backup.js';
import { ensureTestGuest, SerialConsole } from '../guest/test-guest.js';
import { readQemuVmRecord } from '../../../agent/src/drivers/qemu/vm-record.js';
import { backupFigures } from './backup-scenario.js';
import { cloneFigures, type DemoArgs } from './clone-scenario.js';

const CMD_MS = 60_000;

/** The guest's memory area: a quarter of the VM's memory (the rest is the kernel's and free). */
function areaMib(a: DemoArgs): number {
  return Math.max(16, Math.floor(a.vmMemoryMib / 4));
}

/** The fleet of this scenario: every agent on the qemu driver, booting the test guest (built or found in the cache). */
export async function qemuFleetOptions(a: DemoArgs, say: (s: string) => void): Promise<LocalFleetOptions> {
  say('building the test guest from Debian packages (cached after the first run)…');
  const guest = await ensureTestGuest();
  return {
    qemu: {
      kernel: guest.kernel,
      initrd: guest.initrd,
      append: `console=ttyS0 doppel.mem_mib=${areaMib(a)} doppel.rate=${a.dirtyRate} quiet`,
      accel: process.env.DOPPEL_QEMU_ACCEL ?? 'auto',
    },
  };
}

/** The VM's serial console: its socket is in the VM's record in the agent's data directory. */
async function serialOf(fleet: LocalFleet, host: string, vmId: string): Promise<SerialConsole> {
  const rec = readQemuVmRecord(path.join(await fleet.dataRoot, host, 'vms', vmId));
  if (!rec) throw new InternalError(`no qemu record of vm ${vmId} on ${host}`);
  return SerialConsole.connect(rec.serialSocket);
}

async function guestCheck(serial: SerialConsole): Promise<string> {
  const m = await serial.command('check', /^MEMCHECK (ok|fail).*/, CMD_MS);
  return m[1] ?? 'fail';
}

/** The guest's program runs: its pages-written counter moves. */
async function walking(serial: SerialConsole): Promise<boolean> {
  const stats = async () => Number((await serial.command('stats', /^STATS walks=\d+ pages_written=(\d+)/, CMD_MS))[1]);
  const a = await stats();
  await sleep(500);
  return (await stats()) > a;
}

function backupCloneFigures(job: Job): Record<string, unknown> {
  const s = job.backup?.result?.stats?.clone;
  if (!s) throw new InternalError(`backup job ${job.id} has no clone figures`);
  return {
    ...cloneFigures(s),
    // QEMU keeps guest memory to itself: no hashes; the guest checks its own memory (qemu.guestMemoryCheck).
    hashesEqual: null,
    diskBlocks: s.diskBlocks,
    diskBytesWire: s.diskBytesWire,
    diskCopyMs: s.diskCopyMs,
  };
}

export async function qemuScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const say = (s: string) => (a.quiet ? undefined : console.log(s));
  const consoles: SerialConsole[] = [];
  try {
    const hosts = await c.hosts();
    const accel = hosts.find((h) => h.name === 'host-a')?.accel ?? '';
    say(`QEMU guests run under ${accel.toUpperCase()} on ${hosts.map((h) => h.name).join(', ')}`);
    const vm = await c.createVm({ name: 'demo-qemu', host: 'host-a', memoryMib: a.vmMemoryMib, vcpus: 1, disks: [{ name: 'disk0', sizeMib: a.diskMib, image: '' }] });
    const serial = await serialOf(fleet, 'host-a', vm.id);
    consoles.push(serial);
    await c.runVm(vm.id);
    await serial.waitFor(/DOPPEL-GUEST READY/, 120_000);
    const written = (await serial.command('disk 64', /^(DISK|ERR) .*/, CMD_MS))[0];
    say(`created ${vm.name} on host-a: ${a.vmMemoryMib} MiB memory (${areaMib(a)} MiB pattern area, ${a.dirtyRate} page writes/s), ${a.diskMib} MiB qcow2 disk (${written})`);

    say(`backing ${vm.name} up through a live clone on host-b (QEMU's migration over the data plane)…`);
    const full = await waitWithProgress(c, await c.backup({ vm: vm.id, cloneHost: 'host-b', maxDowntimeMs: a.maxDowntimeMs, onNonConvergence: 'warn', keepClone: true }), 'backup');
    if (!a.quiet) printBackupJob(full);
    const backup = backupFigures(full);
    const clone = backupCloneFigures(full);

    // The clone's guest checks its own memory (and its disk, read past its page cache).
    const cloneVm = (await c.vms('host-b')).find((v) => v.cloneOf === vm.id);
    if (!cloneVm) throw new InternalError('the kept clone is not on host-b');
    const cserial = await serialOf(fleet, 'host-b', cloneVm.id);
    consoles.push(cserial);
    const guestMemoryCheck = await guestCheck(cserial);
    const cloneDiskCheck = (await cserial.command('diskcheck', /^(DISKCHECK|ERR) (\S+).*/, CMD_MS))[2] ?? 'fail';
    const cloneRunning = await walking(cserial);
    say(`clone ${cloneVm.name} on host-b: memory check ${guestMemoryCheck}, disk check ${cloneDiskCheck}, guest ${cloneRunning ? 'running' : 'STOPPED'}`);
    const sourceMemoryCheck = await guestCheck(serial);
    const sourceRunning = (await c.vms('host-a')).find((v) => v.id === vm.id)?.state === 'running' && (await walking(serial));
    say(`source ${vm.name} on host-a: memory check ${sourceMemoryCheck}, ${sourceRunning ? 'running' : 'NOT RUNNING'}`);
    await c.destroyVm(cloneVm.id);

    const more = (await serial.command('disk 32', /^(DISK|ERR) .*/, CMD_MS))[0];
    say(`the guest wrote more (${more}); incremental backup…`);
    const inc = await waitWithProgress(c, await c.backup({ vm: vm.id, cloneHost: 'host-b', maxDowntimeMs: a.maxDowntimeMs, onNonConvergence: 'warn', incremental: true }), 'backup');
    if (!a.quiet) printBackupJob(inc);
    const incremental = backupFigures(inc);

    say(`restoring ${String(backup.id)} to host-b…`);
    const rj = await waitWithProgress(c, await c.restore({ backup: String(backup.id), toHost: 'host-b', asName: 'demo-qemu-restored', start: true }), 'restore');
    if (rj.state !== 'completed' || !rj.restore) throw new InternalError(`restore job ${rj.id} ${rj.state}: ${rj.error}`);
    const r = rj.restore;
    say(`restored ${r.vmName} on ${r.targetHost}: disk hash ${r.diskHashes[0]?.slice(0, 16)}… ${r.diskHashes[0] === backup.diskHash ? 'equals' : 'DIFFERS FROM'} the backup's`);
    // The restored guest boots from scratch and finds the backed-up blocks on its disk.
    const rserial = await serialOf(fleet, 'host-b', r.vmId);
    consoles.push(rserial);
    await rserial.waitFor(/DOPPEL-GUEST READY/, 120_000).catch(() => undefined);
    const restoredDiskCheck = (await rserial.command('diskcheck', /^(DISKCHECK|ERR) (\S+).*/, CMD_MS))[2] ?? 'fail';
    say(`restored guest booted; its disk check: ${restoredDiskCheck}`);

    say(`verifying ${String(backup.id)}…`);
    const v = await c.verify(String(backup.id));
    say(`verify: ${v.chunksChecked} chunks checked, ${v.bad.length} bad`);

    const restore = { jobId: rj.id, vmId: r.vmId, host: r.targetHost, diskHash: r.diskHashes[0] ?? '', diskHashes: r.diskHashes, bytesWritten: r.bytesWritten, ms: r.ms, guestDiskCheck: restoredDiskCheck };
    return {
      ok:
        guestMemoryCheck === 'ok' &&
        cloneDiskCheck === 'ok' &&
        sourceMemoryCheck === 'ok' &&
        sourceRunning &&
        restore.diskHash === backup.diskHash &&
        restoredDiskCheck === 'ok' &&
        incremental.kind === 'incremental' &&
        v.bad.length === 0,
      vm: { id: vm.id, host: vm.host, memoryMib: a.vmMemoryMib, diskMib: a.diskMib, dirtyRate: a.dirtyRate, areaMib: areaMib(a) },
      qemu: { accel, guestMemoryCheck, sourceRunning, sourceMemoryCheck, cloneDiskCheck, cloneRunning },
      clone,
      backup,
      incremental,
      restore,
      verify: { chunksChecked: v.chunksChecked, badChunks: v.bad.length, bad: v.bad },
    };
  } finally {
    for (const s of consoles) s.close();
  }
}
