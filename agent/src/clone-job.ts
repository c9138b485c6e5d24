/**
 * Runs one live clone on the source host (seed 000, up to the clone running):
 * pre-copy of memory, the disks made point-in-time in the suspended window,
 * then the disk copy (or, on a shared datastore, a linked overlay). It reports
 * as events; the coordinator keeps the job record from them, so a coordinator
 * restart in the middle of a clone loses nothing.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { DataCorruptionError, fromServiceError, streamTokenMetadata, toDoppelError, type CloneStartArgs, type CloneStats, type Logger, type Transport } from '../../shared/src/mod.js';
import type { DiskSnapshot, DriverVm } from './drivers/driver.js';
import type { DataPlaneClient } from './dataplane/client.js';
import { runPrecopy, type Fault } from './precopy/sender.js';
import { copyDisks } from './diskcopy/sender.js';
import { jobEvents, type JobEvents } from './job-events.js';
import { QemuVm } from './drivers/qemu/qemu-vm.js';
import { migrateToClone } from './migration/sender.js';

export interface CloneJobDeps {
  js: JetStreamClient;
  host: string;
  log: Logger;
  client: DataPlaneClient;
  deadlineMs: number;
  switchoverTimeoutMs: number;
  signal: AbortSignal;
  transport: Transport;
  /** Called once the source VM is back in its state, before the result event: the registry should see it first. */
  onSettled: () => void;
}

/** The clone's memory hash, computed on the target before the clone first runs. */
export function cloneMemoryHash(
  client: DataPlaneClient,
  args: { jobId: string; targetHost: string; targetVmId: string; tokens: { verify: string } },
): Promise<{ memoryHash: string; hashMs: number }> {
  return new Promise((resolve, reject) => {
    client.verifyClone({ jobId: args.jobId, targetVmId: args.targetVmId }, streamTokenMetadata(args.tokens.verify), { deadline: Date.now() + 120_000 }, (err, r) =>
      err || !r ? reject(fromServiceError(err, `verify on ${args.targetHost}`)) : resolve(r),
    );
  });
}

/** The clone gets the frozen disks: an overlay on them (shared datastore) or a block copy; reported as clone.disk-copied. */
export async function giveCloneDisks(
  snapshot: DiskSnapshot,
  args: { jobId: string; targetHost: string; targetVmId: string; linked: boolean; tokens: { disk: string } },
  deps: { client: DataPlaneClient; deadlineMs: number; signal: AbortSignal; events: JobEvents; base: { host: string; jobId: string; vm: string } },
): Promise<Awaited<ReturnType<typeof copyDisks>>> {
  const disk = await copyDisks(snapshot, deps.client, {
    jobId: args.jobId,
    token: args.tokens.disk,
    targetHost: args.targetHost,
    targetVmId: args.targetVmId,
    linked: args.linked,
    deadlineMs: deps.deadlineMs,
    signal: deps.signal,
  });
  const { blocks, bytesRaw, bytesWire, ms, linked } = disk;
  deps.events.emit({ ...deps.base, type: 'clone.disk-copied', blocks, bytesRaw, bytesWire, ms, linked });
  return disk;
}

export interface LiveClone {
  stats: CloneStats;
  /** The source's disks at the switchover; the caller releases it. */
  snapshot: DiskSnapshot;
}

/**
 * The live clone itself, without its result event. `checkpoint` starts a change-tracking checkpoint in the
 * suspended window (a backup's id), so the clone carries exactly what changed up to the switchover.
 */
export async function liveClone(
  vm: DriverVm,
  args: CloneStartArgs,
  deps: CloneJobDeps & { events: JobEvents; checkpoint?: string },
): Promise<LiveClone> {
  const { client, events } = deps;
  const log = deps.log;
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  let snapshot: DiskSnapshot | undefined;
  try {
    if (vm instanceof QemuVm) return await liveCloneOverMigration(vm, args, { ...deps, log, events, base });
    const stats = await runPrecopy(vm, client, {
      jobId: args.jobId,
      token: args.tokens.pages,
      targetHost: args.targetHost,
      targetVmId: args.targetVmId,
      thresholdPages: args.thresholdPages,
      maxRounds: args.maxRounds,
      verify: args.verify,
      fault: args.fault as Fault,
      maxBandwidthBytesPerS: args.maxBandwidthBytesPerS,
      deadlineMs: deps.deadlineMs,
      switchoverTimeoutMs: deps.switchoverTimeoutMs,
      signal: deps.signal,
      log,
      onRound: (r) => events.emit({ ...base, type: 'clone.round', ...r }),
      onSwitchover: (s) => events.emit({ ...base, type: 'clone.switchover', ...s }),
      onSuspended: async () => {
        snapshot = await vm.snapshotDisks({
          ...(deps.checkpoint ? { checkpoint: deps.checkpoint } : {}),
          shareable: args.linked,
        });
      },
    });
    if (!snapshot) throw new Error('the pre-copy ended without a disk snapshot');
    if (args.verify) {
      const reply = await cloneMemoryHash(client, args);
      stats.cloneHash = reply.memoryHash;
      stats.verifyMs += reply.hashMs;
      if (stats.cloneHash !== stats.sourceHash) {
        throw new DataCorruptionError(
          `clone memory hash ${stats.cloneHash.slice(0, 16)}… differs from the source's at suspension ${stats.sourceHash.slice(0, 16)}…`,
        );
      }
    }
    // The source runs again; its disks' state at the switchover goes to the clone.
    const disk = await giveCloneDisks(snapshot, args, { ...deps, events, base });
    log.info({ blocks: disk.blocks, linked: disk.linked, ms: Math.round(disk.ms) }, 'clone disks copied');
    return {
      stats: { ...stats, diskBlocks: disk.blocks, diskBytesRaw: disk.bytesRaw, diskBytesWire: disk.bytesWire, diskCopyMs: disk.ms, diskLinked: disk.linked },
      snapshot,
    };
  } catch (err) {
    // A checkpoint taken for a backup that never happened is merged back.
    await snapshot?.release('abort').catch((e: unknown) => log.error({ err: e }, 'could not release the disk snapshot'));
    throw err;
  }
}

/**
 * The qemu driver's live clone: QEMU's own migration over the data plane (migration/sender.ts) instead of the
 * page-by-page pre-copy, then the same disk step. The clone's memory is checked by the migration itself (frame
 * CRCs, QEMU's stream), not by hash.
 */
async function liveCloneOverMigration(
  vm: QemuVm,
  args: CloneStartArgs,
  deps: CloneJobDeps & { events: JobEvents; checkpoint?: string; base: { host: string; jobId: string; vm: string } },
): Promise<LiveClone> {
  const { stats, snapshot } = await migrateToClone(vm, args, { ...deps, ...(deps.checkpoint ? { checkpoint: deps.checkpoint } : {}) });
  try {
    // Linked clones need a shareable snapshot (its chains); without one the blocks are streamed.
    const linked = args.linked && snapshot.chains.length === snapshot.disks.length && snapshot.disks.length > 0;
    const disk = await giveCloneDisks(snapshot, { ...args, linked }, deps);
    deps.log.info({ blocks: disk.blocks, linked: disk.linked, ms: Math.round(disk.ms) }, 'clone disks copied');
    return {
      stats: { ...stats, diskBlocks: disk.blocks, diskBytesRaw: disk.bytesRaw, diskBytesWire: disk.bytesWire, diskCopyMs: disk.ms, diskLinked: disk.linked },
      snapshot,
    };
  } catch (err) {
    await snapshot.release('abort').catch((e: unknown) => deps.log.error({ err: e }, 'could not release the disk snapshot'));
    throw err;
  }
}

export async function runCloneJob(vm: DriverVm, args: CloneStartArgs, deps: CloneJobDeps): Promise<void> {
  const log = deps.log.child({ jobId: args.jobId, vm: vm.id });
  const events = jobEvents(deps.js, log);
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  try {
    const { stats, snapshot } = await liveClone(vm, args, { ...deps, log, events });
    await snapshot.release('abort');
    deps.onSettled();
    await events.result({ ...base, type: 'clone.completed', stats });
    log.info({ downtimeMs: stats.downtimeMs, rounds: stats.rounds }, 'clone completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'clone failed; source VM keeps running');
    deps.onSettled();
    await events.result({ ...base, type: 'clone.failed', error: e.toJSON() });
  }
}
