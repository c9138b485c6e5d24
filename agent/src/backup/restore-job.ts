/**
 * Restore: a new VM from a backup, with its configuration and disks. Every
 * chunk is checked against its digest as it arrives, and the restored disks are
 * then read back and hashed: the VM is kept only when each equals the backup's
 * content hash, so a restore never hands over wrong bytes.
 */
import {
  DataCorruptionError,
  FailedPreconditionError,
  toDoppelError,
  type Logger,
  type RestoreJobInfo,
  type RestoreStartArgs,
  type Transport,
} from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver } from '../drivers/driver.js';
import type { JobEvents } from '../job-events.js';
import { contentHashOfView, restoreDisks } from './upload.js';
import { readTokens, restoreBypassVolumes } from '../bypass/bypass-restore.js';
import type { ArrayApi } from '../bypass/array-view.js';

export interface RestoreDeps {
  host: string;
  /** This host's cluster (reported with the result). */
  cluster: string;
  transport: Transport;
  driver: HypervisorDriver;
  log: Logger;
  events: JobEvents;
  announce: (vm: DriverVm, type: 'vm.created' | 'vm.running' | 'vm.destroyed') => Promise<void>;
  onSettled: () => void;
  /** The storage array, for a backup with bypass volumes. */
  array?: ArrayApi;
}

export async function runRestoreJob(vm: DriverVm, args: RestoreStartArgs, deps: RestoreDeps): Promise<void> {
  const log = deps.log.child({ jobId: args.jobId, backupId: args.backup.id, vm: vm.id });
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  const t0 = performance.now();
  try {
    let bytesWritten = await restoreDisks(vm, args.backup, {
      log,
      transport: deps.transport,
      onProgress: (progress) => deps.events.emit({ ...base, type: 'restore.progress', phase: 'restore', progress }),
    });
    const bypassed = args.backup.bypass?.volumes ?? [];
    let tokens: { image: number; bypass: number } | null = null;
    let bypassHashes: string[] = [];
    if (bypassed.length > 0) {
      if (!deps.array) throw new FailedPreconditionError(`backup ${args.backup.id} holds bypass volumes, but host '${deps.host}' has no storage array (--array URL)`);
      deps.events.emit({ ...base, type: 'restore.progress', phase: 'bypass-volumes', progress: 0 });
      const r = await restoreBypassVolumes(vm, args.backup, deps.array, deps.transport);
      bytesWritten += r.bytesWritten;
      bypassHashes = r.hashes;
    }
    deps.events.emit({ ...base, type: 'restore.progress', phase: 'verify', progress: 0 });
    // Read the restored disks back: the hash is of what the VM will see, not of what was sent.
    const snapshot = await vm.snapshotDisks();
    let diskHashes: string[];
    try {
      diskHashes = [];
      for (const view of snapshot.disks) diskHashes.push(await contentHashOfView(view, args.backup.disks[diskHashes.length]!.chunkSize));
      // The bypass volumes were read back from the array and checked as they were restored.
      diskHashes.push(...bypassHashes);
    } finally {
      await snapshot.release('abort');
    }
    const bypassDisks = new Set(bypassed.map((v) => v.disk));
    args.backup.disks.filter((d) => !bypassDisks.has(d.name)).forEach((d, i) => {
      if (diskHashes[i] !== d.contentHash) {
        throw new DataCorruptionError(`restored disk '${d.name}' hashes to ${diskHashes[i]!.slice(0, 16)}…, the backup says ${d.contentHash.slice(0, 16)}…`);
      }
    });
    // The check of a time-consistent backup: both tokens as restored, before the guest writes new ones.
    if (bypassed.length > 0 && deps.array) tokens = await readTokens(vm, deps.array);
    vm.markComplete();
    if (args.start) {
      await vm.run();
      await deps.announce(vm, 'vm.running');
    }
    const restore: RestoreJobInfo = {
      backupId: args.backup.id,
      targetHost: deps.host,
      vmName: vm.spec.name,
      vmId: vm.id,
      diskHashes,
      hashesMatch: true,
      bytesWritten,
      ms: performance.now() - t0,
      tokens,
      cluster: deps.cluster,
      network: vm.spec.nics?.[0]?.network ?? '',
      datastorePath: deps.driver.datastore.path,
      cpuModel: vm.spec.cpuModel ?? '',
      plan: args.plan ?? null,
    };
    deps.onSettled();
    await deps.events.result({ ...base, type: 'restore.completed', restore });
    log.info({ ms: Math.round(restore.ms), bytesWritten }, 'restore completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'restore failed; the half-restored VM is removed');
    await deps.driver.destroy(vm.id).catch((x: unknown) => log.warn({ err: x }, 'could not remove the half-restored VM'));
    await deps.announce(vm, 'vm.destroyed').catch(() => undefined);
    deps.onSettled();
    await deps.events.result({ ...base, type: 'restore.failed', error: e.toJSON() });
  }
}
