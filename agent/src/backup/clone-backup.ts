/**
 * The clone host's half of a clone-mode backup (seed 000's last steps): the
 * finished clone is started with its network isolated, its disk is snapshotted,
 * the backup is made from that snapshot, and the clone is removed unless the
 * caller keeps it.
 */
import { type CloneBackupArgs, type Logger, type UploadResult } from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver, SnapshotOutcome } from '../drivers/driver.js';
import type { JobEvents } from '../job-events.js';
import { backupSnapshot } from './upload.js';

export interface CloneBackupDeps {
  host: string;
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
    // 1. The clone runs, cut off from the network so it never answers for the source.
    await clone.run({ isolateNetwork: true });
    await deps.announce(clone, 'vm.running');
    progress('snapshot', 0, `clone ${clone.spec.name} running isolated on ${deps.host}`);
    // 2. A snapshot of the clone's disk: it carries the source's changes up to the switchover plus the clone's own.
    const snapshot = await clone.snapshotDisks({ checkpoint: args.backupId });
    let outcome: SnapshotOutcome = 'abort';
    let result: UploadResult;
    try {
      // 3. The backup is made from that snapshot.
      result = await backupSnapshot(snapshot, {
        backupId: args.backupId,
        base: args.base,
        fullReason: args.fullReason,
        repository: args.repository,
        metadataJson: args.metadataJson,
        log,
        onProgress: progress,
      });
      outcome = 'commit';
    } finally {
      await snapshot.release(outcome).catch((err: unknown) => log.warn({ err }, 'could not release the clone snapshot'));
    }
    // 4. The clone goes, unless kept.
    if (!args.keepClone) {
      await deps.driver.destroy(clone.id);
      removed = true;
      await deps.announce(clone, 'vm.destroyed');
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
