/**
 * The clone host's half of a clone-mode backup (seed 000's last steps): the
 * finished clone is started with its network isolated, its disk is snapshotted,
 * the backup is made from that snapshot, and the clone is removed unless the
 * caller keeps it.
 *
 * The clone runs its guest before the snapshot, so the backup holds the
 * source's disk at the switchover plus whatever the clone wrote meanwhile. Its
 * change set is therefore the source's changes up to the switchover (inherited
 * with the disks) plus the clone's own writes; the clone's own writes go back to
 * the source, which counts them as changed after its new checkpoint: those
 * blocks differ between the backup and the source's disk.
 */
import { type CloneBackupArgs, type Logger, type Transport, type UploadResult } from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver, SnapshotOutcome } from '../drivers/driver.js';
import type { JobEvents } from '../job-events.js';
import { backupSnapshot } from './upload.js';
import { bitmapToRuns, unionChanges } from './block-runs.js';

export interface CloneBackupDeps {
  host: string;
  transport: Transport;
  driver: HypervisorDriver;
  log: Logger;
  events: JobEvents;
  /** Announces a VM state change (heartbeat and event). */
  announce: (vm: DriverVm, type: 'vm.running' | 'vm.destroyed') => Promise<void>;
}

export async function backupFromClone(clone: DriverVm, args: CloneBackupArgs, deps: CloneBackupDeps): Promise<UploadResult> {
  const log = deps.log.child({ jobId: args.jobId, backupId: args.backupId, clone: clone.id });
  const progress = (phase: string, fraction: number, detail: string) =>
    deps.events.emit({ host: deps.host, jobId: args.jobId, vm: clone.id, type: 'backup.progress', phase, progress: fraction, detail });
  let removed = false;
  try {
    // 0. Before it runs, the clone's tracking holds exactly the source's changes up to the switchover: set them
    //    apart, so that what the clone writes from now on is known separately.
    const start = await clone.snapshotDisks({ checkpoint: `${args.backupId}-clone-start` });
    const inherited = start.changes;
    await start.release('commit');
    // 1. The clone runs, cut off from the network so it never answers for the source.
    await clone.run({ isolateNetwork: true });
    await deps.announce(clone, 'vm.running');
    progress('snapshot', 0, `clone ${clone.spec.name} running isolated on ${deps.host}`);
    if (args.settleMs > 0) await new Promise((r) => setTimeout(r, args.settleMs));
    // 2. A snapshot of the clone's disk.
    const snapshot = await clone.snapshotDisks({ checkpoint: args.backupId });
    const own = snapshot.changes;
    let outcome: SnapshotOutcome = 'abort';
    let result: UploadResult;
    try {
      // 3. The backup is made from that snapshot: what changed is the source's changes plus the clone's writes.
      result = await backupSnapshot(snapshot, {
        backupId: args.backupId,
        changes: snapshot.disks.map((_, i) => unionChanges(inherited[i] ?? null, own[i] ?? null)),
        base: args.base,
        fullReason: args.fullReason,
        repository: args.repository,
        transport: deps.transport,
        metadataJson: args.metadataJson,
        log,
        onProgress: progress,
      });
      outcome = 'commit';
    } finally {
      await snapshot.release(outcome).catch((err: unknown) => log.warn({ err }, 'could not release the clone snapshot'));
    }
    result.cloneWrites = snapshot.disks.map((_, i) => {
      const c = own[i];
      return c ? bitmapToRuns(c.bitmap) : null;
    });
    // 4. The clone goes, unless kept. The backup is committed: a failure to remove the clone is logged, not fatal.
    if (!args.keepClone) {
      try {
        await deps.driver.destroy(clone.id);
        removed = true;
        await deps.announce(clone, 'vm.destroyed');
      } catch (err) {
        log.error({ err }, 'backup committed, but the clone could not be removed');
      }
    }
    return result;
  } catch (err) {
    // A failed backup's clone is removed too: it is only there to be backed up.
    if (!removed) {
      await deps.driver.destroy(clone.id).catch((e: unknown) => log.warn({ err: e }, 'could not remove the clone of a failed backup'));
      await deps.announce(clone, 'vm.destroyed').catch(() => undefined);
    }
    throw err;
  }
}
