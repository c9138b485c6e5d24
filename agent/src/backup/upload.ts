/**
 * The agent's side of the repository: backs a disk snapshot up (full, or
 * incremental from change tracking), restores a backup into a VM's disks, and
 * hashes a disk view the way the repository hashes an index (content hash).
 */
import { sealMetadata } from './save-set.js';
import {
  ContentHasher,
  DEFAULT_CHUNK_SIZE,
  RepositoryClient,
  chunkCount,
  chunkLength,
  changedChunksFromBlocks,
  restoreDisk,
  uploadDisk,
  zeroFill,
  type BackupBase,
  type BackupDisk,
  type BackupRecord,
  type Logger,
  type RepoDiskIndex,
  type UploadResult,
  type Transport,
} from '../../../shared/src/mod.js';
import type { BlockChanges, DiskSnapshot, DiskView, DriverVm } from '../drivers/driver.js';

export interface BackupSnapshotOptions {
  backupId: string;
  /** The changes to back up, per disk, instead of the snapshot's own (a clone's: the source's plus its own writes). */
  changes?: (BlockChanges | null)[];
  base: BackupBase | null;
  /** Why the backup is full if it is (from the coordinator: no base, or not asked). */
  fullReason: string;
  repository: string;
  transport: Transport;
  metadataJson: string;
  log: Logger;
  onProgress?: (phase: string, fraction: number, detail: string) => void;
}

/**
 * Reads one chunk of a view. A chunk of holes only is reported as such without
 * touching `into`; otherwise each run of allocated blocks is one read (the runs
 * are read concurrently) and the holes between them are zeroed with `zeroFill`
 * (the uploader's buffers are shared memory, where `Buffer.fill` is slow).
 */
export function chunkReader(view: DiskView, chunkSize: number): (i: number, into: Buffer) => Promise<'data' | 'hole'> {
  const per = chunkSize / view.blockSize;
  const bs = view.blockSize;
  return async (i, into) => {
    const first = i * per;
    const end = Math.min(view.blockCount, first + per);
    const reads: Promise<void>[] = [];
    let b = first;
    while (b < end) {
      const allocated = view.isAllocated(b);
      let n = 1;
      while (b + n < end && view.isAllocated(b + n) === allocated) n++;
      if (allocated) {
        const at = (b - first) * bs;
        reads.push(view.read(b, n, into.subarray(at, at + n * bs)));
      }
      b += n;
    }
    if (reads.length === 0) return 'hole';
    // Zero the holes only once some block is known to hold data.
    b = first;
    while (b < end) {
      let n = 0;
      while (b + n < end && !view.isAllocated(b + n)) n++;
      if (n > 0) zeroFill(into, (b - first) * bs, Math.min(into.length, (b + n - first) * bs));
      b += n + 1;
    }
    // Every read settles before the buffer can be given back, even when one of them fails.
    const failed = (await Promise.allSettled(reads)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return 'data';
  };
}

/** Disks to back up: point-in-time views and, per disk, the changes since the base (a DiskSnapshot is one). */
export interface DiskSet {
  readonly disks: readonly DiskView[];
  readonly changes: readonly (BlockChanges | null)[];
}

/** Decides full or incremental and, for an incremental, fetches the base indexes (one per disk). */
async function planIncremental(
  set: DiskSet,
  repo: RepositoryClient,
  opts: BackupSnapshotOptions,
  chunkSize: number,
): Promise<{ bases: RepoDiskIndex[] | null; fullReason: string }> {
  const { base } = opts;
  if (!base) return { bases: null, fullReason: opts.fullReason || 'no base backup' };
  if (base.repository !== opts.repository) return { bases: null, fullReason: `the base ${base.backupId} is in another repository (${base.repository})` };
  const all = opts.changes ?? set.changes;
  for (const [i, c] of set.disks.map((_, i) => [i, all[i] ?? null] as const)) {
    const name = set.disks[i]!.name;
    if (!c) return { bases: null, fullReason: `changed-block tracking of disk '${name}' was lost (an unclean agent stop) or invalidated` };
    if (c.since !== base.backupId) {
      return { bases: null, fullReason: `disk '${name}' tracks changes since ${c.since || 'its creation'}, not since the base ${base.backupId}` };
    }
  }
  const bases: RepoDiskIndex[] = [];
  for (const view of set.disks) {
    let idx: RepoDiskIndex;
    try {
      idx = await repo.index(base.backupId, view.name);
    } catch (err) {
      opts.log.warn({ err, base: base.backupId, disk: view.name }, 'base index not readable; the backup is full');
      return { bases: null, fullReason: `the base ${base.backupId} has no readable index for disk '${view.name}'` };
    }
    if (idx.sizeBytes !== view.sizeBytes || idx.chunkSize !== chunkSize) {
      return { bases: null, fullReason: `disk '${view.name}' changed size or chunking since the base ${base.backupId}` };
    }
    bases.push(idx);
  }
  return { bases, fullReason: '' };
}

/** The disks of a backup uploaded but not committed: their indexes to commit, and what it cost. */
export interface UploadedDisks extends Omit<UploadResult, 'uploadMs' | 'cloneWrites'> {
  indexes: RepoDiskIndex[];
}

/** Uploads a set of disks (full, or incremental against `opts.base`); the caller commits their indexes. */
export async function uploadDisks(set: DiskSet, repo: RepositoryClient, chunkSize: number, opts: BackupSnapshotOptions): Promise<UploadedDisks> {
  const { bases, fullReason } = await planIncremental(set, repo, opts, chunkSize);
  const kind = bases ? 'incremental' : 'full';
  opts.log.info({ kind, fullReason, disks: set.disks.map((d) => d.name) }, 'backup upload starting');
  const totals = { bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, chunksZero: 0, chunksTotal: 0 };
  const indexes: RepoDiskIndex[] = [];
  const disks: BackupDisk[] = [];
  const allChunks = set.disks.reduce((n, v) => n + chunkCount(v.sizeBytes, chunkSize), 0);
  let before = 0;
  for (const [i, view] of set.disks.entries()) {
    const base = bases?.[i];
    const changes = (opts.changes ?? set.changes)[i];
    const r = await uploadDisk(
      repo,
      { name: view.name, sizeBytes: view.sizeBytes, chunkSize, readChunk: chunkReader(view, chunkSize) },
      {
        ...(base && changes ? { base, changed: changedChunksFromBlocks(changes.bitmap, view.blockSize, chunkSize, view.sizeBytes) } : {}),
        onProgress: (p) => opts.onProgress?.('upload', (before + p.chunksDone) / allChunks, `disk ${view.name}`),
      },
    );
    before += chunkCount(view.sizeBytes, chunkSize);
    indexes.push(r.index);
    for (const k of Object.keys(totals) as (keyof typeof totals)[]) totals[k] += r.stats[k];
    disks.push(backupDisk(view.name, view.sizeBytes, chunkSize, r.index, r.stats.contentHash));
  }
  return { indexes, disks, kind, baseId: bases ? opts.base!.backupId : '', fullReason, ...totals };
}

/** A disk's catalog entry from its index. */
export function backupDisk(name: string, sizeBytes: number, chunkSize: number, index: RepoDiskIndex, contentHash: string): BackupDisk {
  return { name, sizeBytes, chunkSize, chunks: index.digests.length, zeroChunks: index.digests.filter((d) => d.length === 0).length, contentHash };
}

/** Backs a snapshot up into the repository and commits the backup (chunks, then indexes, then the manifest). */
export async function backupSnapshot(snapshot: DiskSnapshot, opts: BackupSnapshotOptions): Promise<UploadResult> {
  const repo = new RepositoryClient(opts.repository, { transport: opts.transport });
  const t0 = performance.now();
  try {
    const chunkSize = (await repo.info()).chunkSize || DEFAULT_CHUNK_SIZE;
    const { indexes, ...result } = await uploadDisks(snapshot, repo, chunkSize, opts);
    opts.onProgress?.('commit', 1, `${opts.backupId}`);
    const metadata = sealMetadata(opts.metadataJson, indexes);
    await repo.commit(opts.backupId, indexes, metadata.json);
    return { ...result, uploadMs: performance.now() - t0, saveSetDigest: metadata.digest };
  } finally {
    repo.close();
  }
}

/** The content hash of a disk view (see shared/src/repo/content-hash.ts), read chunk by chunk. */
export async function contentHashOfView(view: DiskView, chunkSize: number): Promise<string> {
  const hasher = new ContentHasher(view.sizeBytes, chunkSize);
  const read = chunkReader(view, chunkSize);
  const buf = Buffer.allocUnsafe(chunkSize);
  for (let i = 0; i < hasher.chunks; i++) {
    const len = chunkLength(i, view.sizeBytes, chunkSize);
    if ((await read(i, buf.subarray(0, len))) === 'hole') hasher.add(Buffer.alloc(0));
    else hasher.addData(buf.subarray(0, len));
  }
  return hasher.digest();
}

/** Writes a backup's disks into a restore target; every chunk is checked against its digest on arrival. */
export async function restoreDisks(
  vm: DriverVm,
  backup: BackupRecord,
  opts: { log: Logger; transport: Transport; onProgress?: (fraction: number) => void },
): Promise<number> {
  const repo = new RepositoryClient(backup.repository, { transport: opts.transport });
  try {
    const disks = vm.disks();
    let written = 0;
    // A bypass-mode backup's bypass volumes are not the VM's disks: bypass/bypass-restore.ts writes them to the array.
    const bypass = new Set((backup.bypass?.volumes ?? []).map((v) => v.disk));
    const image = backup.disks.filter((d) => !bypass.has(d.name));
    for (const [i, d] of image.entries()) {
      const mine = disks[i];
      if (!mine || mine.name !== d.name || mine.sizeBytes !== d.sizeBytes) {
        throw new Error(`restore target ${vm.id} has no disk ${i} '${d.name}' of ${d.sizeBytes} bytes`);
      }
      const index = await repo.index(backup.id, d.name);
      const r = await restoreDisk(repo, index, (chunk: number, data: Buffer) => vm.writeDiskBlocks(i, (chunk * index.chunkSize) / mine.blockSize, data), {
        expectContentHash: d.contentHash,
        onProgress: (p) => opts.onProgress?.((i + p.chunksDone / Math.max(1, p.chunksTotal)) / image.length),
      });
      written += r.bytesWritten;
      opts.log.debug({ disk: d.name, bytes: r.bytesWritten }, 'disk restored');
    }
    return written;
  } finally {
    repo.close();
  }
}
