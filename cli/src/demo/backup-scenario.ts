/**
 * Scenario `clone-backup` (seed 000, complete): a VM whose memory and disk are
 * under load on host-a is backed up through a live clone on host-b; then an
 * incremental backup; then the backup is restored to host-b and verified.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError } from '../../../shared/src/mod.js';
import type { LocalFleet } from '../fleet/local-fleet.js';
import { printBackupJob, waitWithProgress } from '../commands/backup.js';
import type { Job } from '../client.js';
import { createDemoVm, type DemoArgs } from './clone-scenario.js';

export function backupFigures(job: Job): Record<string, unknown> {
  const b = job.backup?.result;
  if (job.state !== 'completed' || !b?.stats) throw new InternalError(`backup job ${job.id} ${job.state}: ${job.error}`);
  const s = b.stats;
  return {
    jobId: job.id,
    id: b.id,
    mode: b.mode,
    kind: b.kind,
    baseId: b.baseId,
    fullReason: b.fullReason,
    sourcePausedMs: s.sourcePausedMs,
    bytesRead: s.bytesRead,
    bytesStored: s.bytesStored,
    chunksNew: s.chunksNew,
    chunksReused: s.chunksReused,
    chunksZero: s.chunksZero,
    chunksTotal: s.chunksTotal,
    diskCopyBytes: s.diskCopyBytes,
    diskCopyMs: s.diskCopyMs,
    uploadMs: s.uploadMs,
    totalMs: s.totalMs,
    cloneRounds: s.clone?.rounds ?? 0,
    diskHash: b.disks[0]?.contentHash ?? '',
    diskHashes: b.disks.map((d) => d.contentHash),
  };
}

export async function backupScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const { vm, pattern, say } = await createDemoVm(fleet, a);
  say(
    `created ${vm.name} on ${vm.host}: ${a.vmMemoryMib} MiB memory (${a.dirtyRate} page writes/s, ${pattern}), ` +
      `${a.diskMib} MiB disk (${a.diskWriteRate} 4 KiB writes/s)`,
  );
  await sleep(500);

  say(`backing ${vm.name} up through a live clone on host-b…`);
  const full = await waitWithProgress(c, await c.backup({ vm: vm.id, cloneHost: 'host-b', maxDowntimeMs: a.maxDowntimeMs }), 'backup');
  if (!a.quiet) printBackupJob(full);
  const backup = backupFigures(full);

  await sleep(300);
  say(`incremental backup of ${vm.name} (only what changed since ${String(backup.id)})…`);
  const inc = await waitWithProgress(
    c,
    await c.backup({ vm: vm.id, cloneHost: 'host-b', maxDowntimeMs: a.maxDowntimeMs, incremental: true }),
    'backup',
  );
  if (!a.quiet) printBackupJob(inc);
  const incremental = backupFigures(inc);

  say(`restoring ${String(backup.id)} to host-b…`);
  const rj = await waitWithProgress(c, await c.restore({ backup: String(backup.id), toHost: 'host-b', asName: 'demo-vm-restored' }), 'restore');
  if (rj.state !== 'completed' || !rj.restore) throw new InternalError(`restore job ${rj.id} ${rj.state}: ${rj.error}`);
  const r = rj.restore;
  say(`restored ${r.vmName} (${r.vmId}) on ${r.targetHost}: disk hash ${r.diskHashes[0]?.slice(0, 16)}… ${r.diskHashes[0] === backup.diskHash ? 'equals' : 'DIFFERS FROM'} the backup's`);

  say(`verifying ${String(backup.id)}…`);
  const v = await c.verify(String(backup.id));
  say(`verify: ${v.chunksChecked} chunks checked, ${v.bad.length} bad`);

  let source = (await c.vms('host-a')).find((x) => x.id === vm.id);
  for (let i = 0; i < 30 && source?.state !== 'running'; i++) {
    await sleep(100);
    source = (await c.vms('host-a')).find((x) => x.id === vm.id);
  }
  const clonesLeft = (await c.vms('host-b')).filter((x) => x.cloneOf === vm.id).length;
  const restoreFigures = { jobId: rj.id, vmId: r.vmId, host: r.targetHost, diskHash: r.diskHashes[0] ?? '', diskHashes: r.diskHashes, bytesWritten: r.bytesWritten, ms: r.ms };
  return {
    ok:
      restoreFigures.diskHash === backup.diskHash &&
      v.bad.length === 0 &&
      incremental.kind === 'incremental' &&
      source?.state === 'running' &&
      clonesLeft === 0,
    vm: { id: vm.id, host: vm.host, memoryMib: a.vmMemoryMib, diskMib: a.diskMib, dirtyRate: a.dirtyRate, diskWriteRate: a.diskWriteRate, pattern, seed: a.seed },
    backup,
    incremental,
    restore: restoreFigures,
    verify: { chunksChecked: v.chunksChecked, badChunks: v.bad.length, bad: v.bad },
    sourceState: source?.state ?? 'unknown',
    clonesLeft,
  };
}
