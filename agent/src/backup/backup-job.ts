/**
 * A backup job on the VM's own host (seed 000, complete). In clone mode the
 * backup is taken through a live clone on a second host:
 *
 *  1. the clone is made by iterative pre-copy; in the suspended window the
 *     source's disks are frozen (a point-in-time snapshot, with a change-tracking
 *     checkpoint), then the source runs on;
 *  2. the clone gets that disk state (a block copy, or an overlay on a shared datastore);
 *  3. the clone host starts the clone with its network isolated, snapshots the
 *     clone's disk and backs that snapshot up, then removes the clone;
 *  4. the source's checkpoint is committed only once the backup is: a failed
 *     backup merges its changes back, an unknown outcome drops tracking, so an
 *     incremental is never wrong.
 *
 * In direct mode the VM's own disks are snapshotted (a pause of the freeze only) and backed up here.
 */
import {
  DeadlineExceededError,
  FailedPreconditionError,
  UnavailableError,
  sendCommand,
  toDoppelError,
  watchHost,
  type BackupRecord,
  type BackupStartArgs,
  type BypassBackupInfo,
  type CloneStats,
  type Logger,
  type NatsConnection,
  type UploadResult,
} from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver, SnapshotOutcome } from '../drivers/driver.js';
import { bypassBackup } from '../bypass/bypass-backup.js';
import type { ArrayApi } from '../bypass/array-view.js';
import { liveClone, type CloneJobDeps } from '../clone-job.js';
import type { DataPlaneClient } from '../dataplane/client.js';
import { jobEvents, type JobEvents } from '../job-events.js';
import { backupSnapshot } from './upload.js';
import { saveSetDraft, type SaveSetDraft } from './save-set.js';
import { runsToBitmap } from './block-runs.js';

export interface BackupJobDeps extends Omit<CloneJobDeps, 'client'> {
  nc: NatsConnection;
  /** Bypass mode: the host's driver (to read the t1 snapshot) and the storage array's API. */
  driver?: HypervisorDriver;
  array?: ArrayApi;
  /** The data-plane client to the clone host (clone mode only). */
  client?: DataPlaneClient;
  /** The fleet's heartbeat interval: how soon a dead clone host is noticed. */
  heartbeatMs: number;
}

/**
 * The manifest's metadata: what a restore needs besides the disks, and what the catalog shows; with the draft of
 * the save set (VM and cluster configuration), sealed at the commit.
 */
export function backupMetadata(vm: DriverVm, args: BackupStartArgs, host: string, saveSet: SaveSetDraft | undefined, bypass?: BypassBackupInfo): string {
  return JSON.stringify({
    backupId: args.backupId,
    vm: vm.id,
    vmName: vm.spec.name,
    host,
    mode: args.mode,
    spec: vm.spec,
    ...(bypass ? { bypass } : {}),
    ...(saveSet ? { saveSet } : {}),
  });
}

export async function runBackupJob(vm: DriverVm, args: BackupStartArgs, deps: BackupJobDeps): Promise<void> {
  const log = deps.log.child({ jobId: args.jobId, vm: vm.id, backupId: args.backupId });
  const events = jobEvents(deps.js, log);
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  const t0 = performance.now();
  try {
    // Seed 003: the VM's configuration through the export interface, before anything is paused or copied.
    const draft = deps.driver ? saveSetDraft(deps.driver, vm, args, deps.host) : undefined;
    const meta = (bypass?: BypassBackupInfo) => backupMetadata(vm, args, deps.host, draft, bypass);
    const r =
      args.mode === 'clone'
        ? await throughClone(vm, args, deps, log, events, meta)
        : args.mode === 'bypass'
          ? await withBypass(vm, args, deps, log, events, meta)
          : await direct(vm, args, deps, log, events, meta);
    const record: BackupRecord = {
      id: args.backupId,
      vm: vm.id,
      vmName: vm.spec.name,
      host: deps.host,
      createdAt: new Date().toISOString(),
      mode: args.mode,
      kind: r.upload.kind,
      baseId: r.upload.baseId,
      fullReason: r.upload.fullReason,
      repository: args.repository,
      disks: r.upload.disks,
      spec: vm.spec,
      bypass: r.bypass ?? null,
      cluster: args.cluster?.config.name ?? '',
      saveSetDigest: r.upload.saveSetDigest ?? '',
      stats: {
        sourcePausedMs: r.pausedMs,
        bytesRead: r.upload.bytesRead,
        bytesStored: r.upload.bytesStored,
        chunksNew: r.upload.chunksNew,
        chunksReused: r.upload.chunksReused,
        chunksZero: r.upload.chunksZero,
        chunksTotal: r.upload.chunksTotal,
        diskCopyMs: r.clone?.diskCopyMs ?? 0,
        diskCopyBytes: r.clone?.diskBytesRaw ?? 0,
        linkedClone: r.clone?.diskLinked ?? false,
        uploadMs: r.upload.uploadMs,
        totalMs: performance.now() - t0,
        clone: r.clone,
      },
    };
    deps.onSettled();
    await events.result({ ...base, type: 'backup.completed', backup: record });
    log.info({ kind: record.kind, bytesStored: record.stats.bytesStored, pausedMs: r.pausedMs }, 'backup completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'backup failed; the VM keeps running');
    deps.onSettled();
    await events.result({ ...base, type: 'backup.failed', error: e.toJSON() });
  }
}

interface Outcome {
  upload: UploadResult;
  pausedMs: number;
  clone: CloneStats | null;
  bypass?: BypassBackupInfo;
}

/** Bypass mode (seed 001): a time-consistent backup of the image disks and the bypass volumes (bypass/bypass-backup.ts). */
type Metadata = (bypass?: BypassBackupInfo) => string;

async function withBypass(vm: DriverVm, args: BackupStartArgs, deps: BackupJobDeps, log: Logger, events: JobEvents, meta: Metadata): Promise<Outcome> {
  if (!deps.array || !deps.driver) throw new FailedPreconditionError(`host '${deps.host}' has no storage array configured (start the agent with --array URL)`);
  const base = args.base?.arraySnapshot ? { backupId: args.base.backupId, arraySnapshot: args.base.arraySnapshot } : null;
  const r = await bypassBackup(vm, args, meta, base, args.previousArraySnapshot ?? '', {
    host: deps.host,
    driver: deps.driver,
    array: deps.array,
    transport: deps.transport,
    log,
    onProgress: (phase, progress, detail) => events.emit({ host: deps.host, jobId: args.jobId, vm: vm.id, type: 'backup.progress', phase, progress, detail }),
  });
  return { upload: r.upload, pausedMs: r.pausedMs, clone: null, bypass: r.bypass };
}

async function throughClone(vm: DriverVm, args: BackupStartArgs, deps: BackupJobDeps, log: Logger, events: JobEvents, meta: Metadata): Promise<Outcome> {
  const { clone } = args;
  const { client } = deps;
  if (!clone || !client) throw new Error('a clone-mode backup needs its clone arguments');
  const { stats, snapshot } = await liveClone(vm, { ...clone, linked: args.linked }, { ...deps, client, log, events, checkpoint: args.backupId });
  events.emit({ host: deps.host, jobId: args.jobId, vm: vm.id, type: 'backup.progress', phase: 'snapshot', progress: 0, detail: `clone on ${clone.targetHost}` });
  let outcome: SnapshotOutcome = 'abort';
  let alsoChanged: (Uint32Array | null)[] | undefined;
  // The clone host does the upload: if it dies, stop waiting at once (the request's deadline is long).
  const watch = watchHost(deps.nc, clone.targetHost, { intervalMs: deps.heartbeatMs, what: `backup ${args.backupId}` });
  try {
    const upload = await Promise.race([watch.gone, sendCommand(
      deps.nc,
      clone.targetHost,
      'clone.backup',
      {
        jobId: args.jobId,
        backupId: args.backupId,
        cloneVmId: clone.targetVmId,
        base: args.base,
        fullReason: args.fullReason,
        repository: args.repository,
        keepClone: args.keepClone,
        settleMs: args.cloneSettleMs,
        metadataJson: meta(),
      },
      deps.deadlineMs,
      deps.host,
    )]);
    outcome = 'commit';
    // The clone's own writes are in the backup but not on this disk: they count as changed from now on.
    alsoChanged = snapshot.disks.map((view, i) => {
      const runs = upload.cloneWrites?.[i];
      return runs ? runsToBitmap(runs, Math.ceil(view.blockCount / 32)) : null;
    });
    return { upload, pausedMs: stats.downtimeMs, clone: stats };
  } catch (err) {
    // Without an answer the backup may or may not have committed: drop tracking rather than guess.
    if (err instanceof DeadlineExceededError || err instanceof UnavailableError) outcome = 'invalidate';
    throw err;
  } finally {
    watch.stop();
    await snapshot.release(outcome, alsoChanged).catch((e: unknown) => log.error({ err: e, outcome }, 'could not release the source snapshot'));
  }
}

async function direct(vm: DriverVm, args: BackupStartArgs, deps: BackupJobDeps, log: Logger, events: JobEvents, meta: Metadata): Promise<Outcome> {
  await vm.settleDisks();
  const t = performance.now();
  const wasRunning = vm.state === 'running';
  const snapshot = await vm.snapshotDisks({ checkpoint: args.backupId });
  // The driver pauses a running guest only for the freeze inside this call: its length bounds the pause.
  const pausedMs = wasRunning ? performance.now() - t : 0;
  let outcome: SnapshotOutcome = 'abort';
  try {
    const upload = await backupSnapshot(snapshot, {
      backupId: args.backupId,
      base: args.base,
      fullReason: args.fullReason,
      repository: args.repository,
      transport: deps.transport,
      metadataJson: meta(),
      log,
      onProgress: (phase, progress, detail) =>
        events.emit({ host: deps.host, jobId: args.jobId, vm: vm.id, type: 'backup.progress', phase, progress, detail }),
    });
    outcome = 'commit';
    return { upload, pausedMs, clone: null };
  } finally {
    await snapshot.release(outcome).catch((e: unknown) => log.error({ err: e, outcome }, 'could not release the snapshot'));
  }
}
