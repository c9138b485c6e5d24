/**
 * The agent's side of the repository: backs a disk snapshot up (full, or
 * incremental from change tracking), restores a backup into a VM's disks, and
 * hashes a disk view the way the repository hashes an index (content hash).
 */
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

/** Decides full or incremental and, for an incremental, fetches the base indexes (one per disk). */
async function planIncremental(
  snapshot: DiskSnapshot,
  repo: RepositoryClient,
  opts: BackupSnapshotOptions,
  chunkSize: number,
): Promise<{ bases: RepoDiskIndex[] | null; fullReason: string }> {
  const { base } = opts;
  if (!base) return { bases: null, fullReason: opts.fullReason || 'no base backup' };
  if (base.repository !== opts.repository) return { bases: null, fullReason: `the base ${base.backupId} is in another repository (${base.repository})` };
  const all = opts.changes ?? snapshot.changes;
  for (const [i, c] of snapshot.disks.map((_, i) => [i, all[i] ?? null] as const)) {
    const name = snapshot.disks[i]!.name;
    if (!c) return { bases: null, fullReason: `changed-block tracking of disk '${name}' was lost (an unclean agent stop) or invalidated` };
    if (c.since !== base.backupId) {
      return { bases: null, fullReason: `disk '${name}' tracks changes since ${c.since || 'its creation'}, not since the base ${base.backupId}` };
    }
  }
  const bases: RepoDiskIndex[] = [];
  for (const view of snapshot.disks) {
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

/** Backs a snapshot up into the repository and commits the backup (chunks, then indexes, then the manifest). */
export async function backupSnapshot(snapshot: DiskSnapshot, opts: BackupSnapshotOptions): Promise<UploadResult> {
  const repo = new RepositoryClient(opts.repository, { transport: opts.transport });
  const t0 = performance.now();
  try {
    const chunkSize = (await repo.info()).chunkSize || DEFAULT_CHUNK_SIZE;
    const { bases, fullReason } = await planIncremental(snapshot, repo, opts, chunkSize);
    const kind = bases ? 'incremental' : 'full';
    opts.log.info({ kind, fullReason }, 'backup upload starting');
    const totals = { bytesRead: 0, bytesStored: 0, chunksNew: 0, chunksReused: 0, chunksZero: 0, chunksTotal: 0 };
    const indexes: RepoDiskIndex[] = [];
    const disks: BackupDisk[] = [];
    const allChunks = snapshot.disks.reduce((n, v) => n + chunkCount(v.sizeBytes, chunkSize), 0);
    let before = 0;
    for (const [i, view] of snapshot.disks.entries()) {
      const base = bases?.[i];
      const changes = (opts.changes ?? snapshot.changes)[i];
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
      disks.push({
        name: view.name,
        sizeBytes: view.sizeBytes,
        chunkSize,
        chunks: r.index.digests.length,
        zeroChunks: r.index.digests.filter((d) => d.length === 0).length,
        contentHash: r.stats.contentHash,
      });
    }
    opts.onProgress?.('commit', 1, `${opts.backupId}`);
    await repo.commit(opts.backupId, indexes, opts.metadataJson);
    return { disks, kind, baseId: bases ? opts.base!.backupId : '', fullReason, ...totals, uploadMs: performance.now() - t0 };
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
    for (const [i, d] of backup.disks.entries()) {
      const mine = disks[i];
      if (!mine || mine.name !== d.name || mine.sizeBytes !== d.sizeBytes) {
        throw new Error(`restore target ${vm.id} has no disk ${i} '${d.name}' of ${d.sizeBytes} bytes`);
      }
      const index = await repo.index(backup.id, d.name);
      const r = await restoreDisk(repo, index, (chunk: number, data: Buffer) => vm.writeDiskBlocks(i, (chunk * index.chunkSize) / mine.blockSize, data), {
        expectContentHash: d.contentHash,
        onProgress: (p) => opts.onProgress?.((i + p.chunksDone / Math.max(1, p.chunksTotal)) / backup.disks.length),
      });
      written += r.bytesWritten;
      opts.log.debug({ disk: d.name, bytes: r.bytesWritten }, 'disk restored');
    }
    return written;
  } finally {
    repo.close();
  }
}
