/**
 * A time-consistent backup of a VM whose guest writes volumes past the
 * hypervisor (seed 001), on the VM's own host. Clause by clause:
 *
 *  1. The first snapshot, at t1, of the image disks and the bypass volumes: the
 *     guest is paused, its bypass writes in flight are flushed to the array,
 *     the array snapshots the bypass volumes and the host its image disks (a
 *     pinned storage snapshot, O(1)); then the guest runs on.
 *  2. The bypass volumes are backed up from the array's t1 snapshot.
 *  3. The second snapshot, at t2, of the image disks only (with the change
 *     tracking checkpoint of this backup).
 *  4. The image disks are backed up from the t2 snapshot.
 *  5. That image backup is reverted to t1 with the first snapshot: every block
 *     written between t1 and t2 takes its t1 content, and only those blocks are
 *     read from the t1 snapshot. Its chunks are re-made in the repository.
 *
 * Then one manifest commits both parts as one backup. On any failure nothing is
 * committed (the catalog shows nothing), the array's snapshot is deleted and the
 * host's is unpinned.
 */
import { sealMetadata } from '../backup/save-set.js';
import {
  DEFAULT_CHUNK_SIZE,
  InvalidArgumentError,
  RepositoryClient,
  changedChunksFromBlocks,
  uploadDisk,
  zeroFill,
  type BackupStartArgs,
  type BypassBackupInfo,
  type Logger,
  type RepoDiskIndex,
  type Transport,
  type UploadResult,
} from '../../../shared/src/mod.js';
import type { BlockChanges, DiskView, DriverVm, HypervisorDriver, SnapshotOutcome } from '../drivers/driver.js';
import { backupDisk, chunkReader, uploadDisks, type BackupSnapshotOptions } from '../backup/upload.js';
import { ArraySnapshotView, bitmapWords, type ArrayApi } from './array-view.js';

/** Bypass volumes are backed up as disks named so (an image disk of that name is refused). */
export const BYPASS_DISK_PREFIX = 'bypass-';

/** The host's storage-snapshot pins of a bypass backup's t1: `bypass-t1-<host>.<backup id>` (dropped at agent start when left). */
export const BYPASS_PIN_PREFIX = 'bypass-t1-';
/** How long each step of the t1 fence (the flush, the array's snapshot) may keep the guest paused. */
export const FENCE_BUDGET_MS = 5_000;

export interface BypassBackupDeps {
  host: string;
  driver: HypervisorDriver;
  array: ArrayApi;
  transport: Transport;
  log: Logger;
  onProgress: (phase: string, progress: number, detail: string) => void;
}

export interface BypassBackupResult {
  upload: UploadResult;
  pausedMs: number;
  bypass: BypassBackupInfo;
}

/** The base backup's array snapshot, for an incremental of the bypass volumes (from its manifest metadata). */
export interface BypassBase {
  backupId: string;
  arraySnapshot: string;
}

export async function bypassBackup(
  vm: DriverVm,
  args: BackupStartArgs,
  metadata: (bypass: BypassBackupInfo) => string,
  bypassBase: BypassBase | null,
  /** The VM's newest backup's array snapshot, deleted once this backup commits (full or incremental). */
  previousArraySnapshot: string,
  deps: BypassBackupDeps,
): Promise<BypassBackupResult> {
  const { array, log } = deps;
  const vols = vm.bypassVolumes();
  if (vols.length === 0) throw new InvalidArgumentError(`vm '${vm.spec.name}' has no bypass volumes: back it up in clone or direct mode`);
  const clash = vm.disks().find((d) => d.name.startsWith(BYPASS_DISK_PREFIX));
  if (clash) throw new InvalidArgumentError(`disk '${clash.name}' of vm '${vm.spec.name}' starts with '${BYPASS_DISK_PREFIX}', which names bypass volumes in a backup`);
  const pinRef = `${BYPASS_PIN_PREFIX}${deps.host}.${args.backupId}`;
  const label = `${args.backupId}-t1`;
  const t0 = performance.now();
  let arraySnap: { id: string; createdAt: string } | undefined;
  let t1Chains: string[][] | undefined;
  let committed = false;
  const repo = new RepositoryClient(args.repository, { transport: deps.transport });
  try {
    // 1. The first snapshot, at t1: both kinds of volume in one fenced moment.
    deps.onProgress('snapshot-t1', 0, 'fencing the guest');
    await vm.settleDisks();
    const wasRunning = vm.state === 'running';
    const f0 = performance.now();
    if (wasRunning) await vm.suspend();
    try {
      // The guest stays paused for at most about two fence budgets, however the array behaves.
      await vm.flushBypass(FENCE_BUDGET_MS);
      arraySnap = await array.createSnapshot(
        vols.map((v) => v.volume),
        label,
        { timeoutMs: FENCE_BUDGET_MS },
      );
      // The guest is parked, so this freeze adds no pause of its own.
      t1Chains = (await vm.createStorageSnapshot(pinRef)).chains;
    } finally {
      if (wasRunning) await vm.run();
    }
    const fenceMs = wasRunning ? performance.now() - f0 : 0;
    const t1 = arraySnap.createdAt;
    log.info({ t1, arraySnapshot: arraySnap.id, fenceMs: +fenceMs.toFixed(2) }, 'first snapshot (t1): bypass volumes on the array, image disks on the host');

    const chunkSize = (await repo.info()).chunkSize || DEFAULT_CHUNK_SIZE;
    const common: Omit<BackupSnapshotOptions, 'changes' | 'base'> = {
      backupId: args.backupId,
      fullReason: args.fullReason,
      repository: args.repository,
      transport: deps.transport,
      metadataJson: '',
      log,
      onProgress: deps.onProgress,
    };

    // 2. The bypass volumes' backup image, from the t1 snapshot (an incremental from the array's own diff).
    const views: DiskView[] = [];
    const changes: (BlockChanges | null)[] = [];
    for (const v of vols) {
      const alloc = await array.allocated(arraySnap.id, v.volume);
      views.push(new ArraySnapshotView(array, arraySnap.id, v.volume, `${BYPASS_DISK_PREFIX}${v.name}`, v.sizeBytes, alloc.blockSize, alloc.bitmap));
      if (bypassBase && args.base?.backupId === bypassBase.backupId) {
        const d = await array.diff(arraySnap.id, v.volume, bypassBase.arraySnapshot).catch((err: unknown) => {
          log.warn({ err, volume: v.volume }, 'no array diff against the base snapshot; the bypass volumes are backed up in full');
          return null;
        });
        changes.push(d ? { since: bypassBase.backupId, bitmap: bitmapWords(d.bitmap, Math.ceil(v.sizeBytes / d.blockSize)) } : null);
      } else {
        changes.push(null);
      }
    }
    const bypassPart = await uploadDisks({ disks: views, changes }, repo, chunkSize, { ...common, base: args.base });
    if (bypassPart.kind === 'full' && args.base) {
      bypassPart.fullReason = args.base.arraySnapshot
        ? `the array has no diff of the bypass volumes against the base's snapshot ${args.base.arraySnapshot}`
        : `the base ${args.base.backupId} holds no array snapshot of the bypass volumes`;
    }

    // 3. The second snapshot, at t2, of the image disks.
    deps.onProgress('snapshot-t2', 0, 'image disks');
    await vm.settleDisks();
    const t2Snap = await vm.snapshotDisks({ checkpoint: args.backupId });
    const t2 = new Date().toISOString();
    let outcome: SnapshotOutcome = 'abort';
    let alsoChanged: (Uint32Array | null)[] | undefined;
    try {
      // 4. The image disks' backup image, from the t2 snapshot.
      const imagePart = await uploadDisks(t2Snap, repo, chunkSize, { ...common, base: args.base });

      // 5. Revert the image backup to t1: the blocks written between t1 and t2 take their t1 content.
      const r0 = performance.now();
      const written = vm.blocksWrittenSince(t1Chains, t2Snap);
      let blocksReverted = 0;
      const indexes: RepoDiskIndex[] = [];
      const disks = [...imagePart.disks];
      if (args.skipRevert) {
        log.warn('revert skipped (test flag): the image part stays at t2');
        indexes.push(...imagePart.indexes);
      } else {
        const t1Views = deps.driver.openChainViews(vm.spec.disks.map((d, i) => ({ name: d.name, sizeMib: d.sizeMib, layers: t1Chains![i]! })));
        try {
          for (const [i, view] of t2Snap.disks.entries()) {
            const r = await revertDisk(repo, imagePart.indexes[i]!, written[i]!, t1Views.views[i]!, view, chunkSize);
            blocksReverted += r.blocks;
            indexes.push(r.index);
            disks[i] = backupDisk(view.name, view.sizeBytes, chunkSize, r.index, r.contentHash);
          }
        } finally {
          t1Views.close();
        }
      }
      const revertMs = performance.now() - r0;
      log.info({ blocksReverted, revertMs: +revertMs.toFixed(1), reverted: !args.skipRevert }, 'image backup reverted to t1');

      const bypass: BypassBackupInfo = {
        t1,
        t2,
        array: array.url,
        arraySnapshot: arraySnap.id,
        volumes: vols.map((v) => ({ name: v.name, volume: v.volume, disk: `${BYPASS_DISK_PREFIX}${v.name}` })),
        blocksReverted,
        reverted: !args.skipRevert,
        fenceMs,
        revertMs,
      };
      deps.onProgress('commit', 1, args.backupId);
      const sealed = sealMetadata(metadata(bypass), [...indexes, ...bypassPart.indexes]);
      await repo.commit(args.backupId, [...indexes, ...bypassPart.indexes], sealed.json);
      committed = true;
      outcome = 'commit';
      // The backup holds t1 content for the reverted blocks, the disk their later content: changed since it.
      alsoChanged = written;
      const sum = <K extends 'bytesRead' | 'bytesStored' | 'chunksNew' | 'chunksReused' | 'chunksZero' | 'chunksTotal'>(k: K) => imagePart[k] + bypassPart[k];
      const kind = imagePart.kind === 'incremental' && bypassPart.kind === 'incremental' ? 'incremental' : 'full';
      const upload: UploadResult = {
        disks: [...disks, ...bypassPart.disks],
        kind,
        baseId: kind === 'incremental' ? imagePart.baseId : '',
        fullReason: kind === 'full' ? imagePart.fullReason || bypassPart.fullReason || 'the bypass volumes have no base on the array' : '',
        bytesRead: sum('bytesRead'),
        bytesStored: sum('bytesStored'),
        chunksNew: sum('chunksNew'),
        chunksReused: sum('chunksReused'),
        chunksZero: sum('chunksZero'),
        chunksTotal: sum('chunksTotal'),
        uploadMs: performance.now() - t0,
        saveSetDigest: sealed.digest,
      };
      return { upload, pausedMs: fenceMs, bypass };
    } finally {
      await t2Snap.release(outcome, alsoChanged).catch((err: unknown) => log.error({ err, outcome }, 'could not release the t2 snapshot'));
    }
  } finally {
    repo.close();
    // The host's t1 snapshot has served; the array's stays as the next incremental's base unless nothing committed.
    if (t1Chains) await deps.driver.unpinLayers(pinRef, t1Chains).catch((err: unknown) => log.error({ err }, 'could not unpin the t1 snapshot'));
    if (!committed) await dropArraySnapshot(array, arraySnap?.id, label, log);
    // Only the newest backup's t1 snapshot is kept on the array (the next incremental's base).
    if (committed && previousArraySnapshot && previousArraySnapshot !== arraySnap?.id) {
      await array.deleteSnapshot(previousArraySnapshot).catch((err: unknown) => log.debug({ err }, 'the previous backup\'s array snapshot was already gone'));
    }
  }
}

/**
 * Re-makes the chunks of one image disk's backup that hold blocks written between t1 and t2: each such chunk is the
 * t2 chunk (as the backup image has it) with those blocks read from the t1 snapshot, and nothing else read from it.
 */
async function revertDisk(
  repo: RepositoryClient,
  t2Index: RepoDiskIndex,
  written: Uint32Array,
  t1: DiskView,
  t2: DiskView,
  chunkSize: number,
): Promise<{ index: RepoDiskIndex; blocks: number; contentHash: string }> {
  const per = chunkSize / t2.blockSize;
  const chunks = changedChunksFromBlocks(written, t2.blockSize, chunkSize, t2.sizeBytes);
  const readT2 = chunkReader(t2, chunkSize);
  let blocks = 0;
  const r = await uploadDisk(
    repo,
    {
      name: t2.name,
      sizeBytes: t2.sizeBytes,
      chunkSize,
      readChunk: async (i, into) => {
        if ((await readT2(i, into)) === 'hole') zeroFill(into, 0, into.length);
        const first = i * per;
        const end = Math.min(t2.blockCount, first + per);
        for (let b = first; b < end; b++) {
          if (!((written[b >>> 5]! >>> (b & 31)) & 1)) continue;
          const at = (b - first) * t2.blockSize;
          await t1.read(b, 1, into.subarray(at, at + t2.blockSize));
          blocks++;
        }
        return 'data';
      },
    },
    { base: t2Index, changed: chunks },
  );
  return { index: r.index, blocks, contentHash: r.stats.contentHash };
}

/**
 * Deletes a failed backup's t1 snapshot on the array: by id, or when the call that made it did not answer (it may
 * have made it anyway), by its label.
 */
async function dropArraySnapshot(array: ArrayApi, id: string | undefined, label: string, log: Logger): Promise<void> {
  try {
    const ids = id ? [id] : (await array.listSnapshots()).filter((s) => s.label === label).map((s) => s.id);
    for (const x of ids) await array.deleteSnapshot(x);
  } catch (err) {
    log.warn({ err, id, label }, 'the array snapshot of a failed backup was not deleted');
  }
}
