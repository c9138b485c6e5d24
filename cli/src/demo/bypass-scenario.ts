/**
 * Scenario `bypass-backup` (seed 001): a VM on host-a writes its image disk
 * through the hypervisor and a bypass volume straight to the storage array,
 * with a consistency token (a sequence number and a checksum) on both in one
 * step. It is backed up time-consistently (t1 snapshot of both, bypass backup
 * from t1, t2 snapshot of the image disk, image backup from t2, reverted to t1),
 * then incrementally; then once more with the revert disabled (a test flag),
 * to show what the revert is for. Each backup is restored to host-b and the two
 * tokens are read from the restored VM.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError, WORKLOAD_PATTERNS, requireOneOf } from '../../../shared/src/mod.js';
import type { LocalFleet } from '../fleet/local-fleet.js';
import type { DemoArgs } from './clone-scenario.js';

export async function bypassScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const say = (s: string) => (a.quiet ? undefined : console.log(s));
  const pattern = requireOneOf('pattern', a.pattern, WORKLOAD_PATTERNS);
  const vm = await c.createVm({
    name: 'demo-vm',
    host: 'host-a',
    memoryMib: a.vmMemoryMib,
    vcpus: 2,
    workload: { dirtyRate: a.dirtyRate, pattern, seed: a.seed, diskWriteRate: a.diskWriteRate, tokenRate: 200, bypassWriteRate: 20 },
    disks: [{ name: 'disk0', sizeMib: a.diskMib, image: 'base' }],
    bypass: [{ name: 'data', sizeMib: Math.max(16, Math.floor(a.diskMib / 2)) }],
  });
  say(`vm ${vm.name} (${vm.id}) on host-a: disk ${a.diskMib} MiB through the hypervisor, bypass volume 'data' on the array at ${fleet.array?.url}`);
  say('the guest writes a consistency token to both, 200 steps/s');
  await sleep(1000);

  const backup = async (o: { incremental?: boolean; skipRevert?: boolean }) => {
    const job = await c.waitJob((await c.backup({ vm: vm.id, incremental: o.incremental === true, skipRevert: o.skipRevert === true })).id);
    if (job.state !== 'completed' || !job.backup?.result) throw new InternalError(`backup job ${job.id} ${job.state}: ${job.error}`);
    return job.backup.result;
  };
  const restore = async (backupId: string, asName: string) => {
    const job = await c.waitJob((await c.restore({ backup: backupId, toHost: 'host-b', asName })).id);
    if (job.state !== 'completed' || !job.restore) throw new InternalError(`restore job ${job.id} ${job.state}: ${job.error}`);
    return { vmId: job.restore.vmId, image: Number(job.restore.imageToken), bypass: Number(job.restore.bypassToken), hashesMatch: job.restore.hashesMatch };
  };

  const full = await backup({});
  const fb = full.bypass!;
  say(`backup ${full.id} (${full.kind}): t1 ${fb.t1} (array snapshot ${fb.arraySnapshot}, guest fenced ${fb.fenceMs.toFixed(1)} ms), t2 ${fb.t2}`);
  say(`  ${fb.blocksReverted} image blocks written between t1 and t2 reverted to t1 in ${fb.revertMs.toFixed(1)} ms; disks: ${full.disks.map((d) => d.name).join(', ')}`);
  const r = await restore(full.id, 'demo-vm-restored');
  say(`restored to host-b: image token ${r.image}, bypass token ${r.bypass} (${r.image === r.bypass ? 'equal: time-consistent' : 'DIFFERENT'})`);

  await sleep(1000);
  const inc = await backup({ incremental: true });
  say(`incremental ${inc.id} (${inc.kind}, base ${inc.baseId}): read ${(Number(inc.stats!.bytesRead) / 2 ** 20).toFixed(1)} MiB of ${(Number(full.stats!.bytesRead) / 2 ** 20).toFixed(1)}; ${inc.bypass!.blocksReverted} blocks reverted`);
  const ri = await restore(inc.id, 'demo-vm-restored-inc');
  say(`  restored: image token ${ri.image}, bypass token ${ri.bypass}`);

  const skipped = await backup({ skipRevert: true });
  const rn = await restore(skipped.id, 'demo-vm-restored-norevert');
  say(`without the revert (test flag): image token ${rn.image} (t2), bypass token ${rn.bypass} (t1): ${rn.image !== rn.bypass ? 'they differ' : 'equal?!'}`);

  const result = {
    vm: { id: vm.id, host: vm.host, diskMib: a.diskMib, diskWriteRate: a.diskWriteRate },
    bypass: {
      backupId: full.id,
      t1: fb.t1,
      t2: fb.t2,
      arraySnapshot: fb.arraySnapshot,
      blocksReverted: Number(fb.blocksReverted),
      fenceMs: fb.fenceMs,
      revertMs: fb.revertMs,
      disks: full.disks.map((d) => d.name),
    },
    restore: { vm: r.vmId, imageToken: r.image, bypassToken: r.bypass, hashesMatch: r.hashesMatch },
    incremental: {
      backupId: inc.id,
      kind: inc.kind,
      baseId: inc.baseId,
      bytesRead: Number(inc.stats!.bytesRead),
      fullBytesRead: Number(full.stats!.bytesRead),
      blocksReverted: Number(inc.bypass!.blocksReverted),
      imageToken: ri.image,
      bypassToken: ri.bypass,
    },
    noRevert: { backupId: skipped.id, imageToken: rn.image, bypassToken: rn.bypass },
  };
  const ok =
    r.image > 0 &&
    r.image === r.bypass &&
    ri.image > 0 &&
    ri.image === ri.bypass &&
    inc.kind === 'incremental' &&
    rn.image !== rn.bypass &&
    result.bypass.blocksReverted > 0;
  return { ok, ...result };
}
