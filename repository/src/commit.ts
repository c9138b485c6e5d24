/**
 * Commits a backup: checks the request, checks that every chunk its indexes
 * reference is stored, then writes the indexes and the manifest into a staging
 * directory under tmp/ and renames it to backups/<id>. The rename is the commit
 * point: before it nothing of the backup is visible, after it all of it is.
 */
import { mkdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  MAX_BACKUP_DISKS,
  MAX_METADATA_BYTES,
  checkDiskIndex,
  contentHashOf,
  digestHex,
  requireName,
  sha256,
  type RepoDiskIndex,
  type RepoDiskManifest,
  type RepoManifest,
} from '../../shared/src/mod.js';
import { diskFullError, fsyncDir, isDiskFull, isNotFound, isTargetTaken, removeQuietly, tmpPath, writeDurable } from './atomic.js';
import { encodeIndex } from './index-file.js';
import { serializeManifest } from './manifest.js';
import type { Repository } from './store.js';

/** A backup to commit: its id, one index per disk, the caller's metadata. */
export interface CommitRequest {
  backupId: string;
  disks: readonly RepoDiskIndex[];
  /** '' or JSON, at most MAX_METADATA_BYTES. */
  metadataJson: string;
}

function checkRequest(req: CommitRequest, chunkSize: number): void {
  requireName('backup id', req.backupId);
  if (req.disks.length < 1 || req.disks.length > MAX_BACKUP_DISKS) {
    throw new InvalidArgumentError(`backup ${req.backupId}: a backup holds 1 to ${MAX_BACKUP_DISKS} disks (got ${req.disks.length})`);
  }
  const names = new Set<string>();
  for (const [i, d] of req.disks.entries()) {
    requireName(`disk ${i} name`, d.disk);
    if (names.has(d.disk)) throw new InvalidArgumentError(`backup ${req.backupId}: disk name '${d.disk}' is used twice`);
    names.add(d.disk);
    checkDiskIndex(d, chunkSize);
  }
  const metaBytes = Buffer.byteLength(req.metadataJson, 'utf8');
  if (metaBytes > MAX_METADATA_BYTES) {
    throw new InvalidArgumentError(`backup ${req.backupId}: metadata is ${metaBytes} bytes; the limit is ${MAX_METADATA_BYTES}`);
  }
  if (req.metadataJson !== '') {
    try {
      JSON.parse(req.metadataJson);
    } catch (err) {
      throw new InvalidArgumentError(`backup ${req.backupId}: metadata_json is not JSON (${(err as Error).message})`);
    }
  }
}

/** Throws FailedPreconditionError naming the first referenced chunk (in disk order) that is not stored. */
async function requireChunks(repo: Repository, req: CommitRequest): Promise<void> {
  const first = new Map<string, { digest: Buffer; disk: string; chunk: number }>();
  for (const d of req.disks) {
    d.digests.forEach((digest, chunk) => {
      if (digest.length === 0) return;
      const key = digest.toString('hex');
      if (!first.has(key)) first.set(key, { digest, disk: d.disk, chunk });
    });
  }
  const refs = [...first.values()];
  for (let off = 0; off < refs.length; off += 64) {
    const slice = refs.slice(off, off + 64);
    const present = await Promise.all(slice.map((r) => repo.hasChunk(r.digest)));
    const k = present.indexOf(false);
    if (k >= 0) {
      const r = slice[k]!;
      throw new FailedPreconditionError(
        `backup ${req.backupId}: chunk ${digestHex(r.digest)} (disk '${r.disk}', chunk ${r.chunk}) is not in the repository; upload it before committing`,
      );
    }
  }
}

/** Checks and commits a backup; call through `Repository.commit`, which keeps one commit per id at a time. */
export async function commitBackup(repo: Repository, req: CommitRequest): Promise<RepoManifest> {
  checkRequest(req, repo.chunkSize);
  const { backupId } = req;
  const target = repo.backupDir(backupId);
  const exists = await stat(path.join(target, 'manifest.json')).then(
    () => true,
    (err: unknown) => (isNotFound(err) ? false : Promise.reject(err)),
  );
  if (exists) throw new AlreadyExistsError(`backup ${backupId} already exists in the repository at ${repo.dir}`);
  await requireChunks(repo, req);

  const staging = tmpPath(repo.tmpDir, `commit-${backupId}`);
  try {
    await mkdir(staging);
    const disks: RepoDiskManifest[] = [];
    for (const d of req.disks) {
      const bytes = encodeIndex(d);
      await writeDurable(path.join(staging, `${d.disk}.index`), [bytes]);
      disks.push({
        name: d.disk,
        sizeBytes: d.sizeBytes,
        chunkSize: d.chunkSize,
        chunks: d.digests.length,
        zeroChunks: d.digests.reduce((n, x) => n + (x.length === 0 ? 1 : 0), 0),
        indexSha256: sha256(bytes).toString('hex'),
        contentHash: contentHashOf(d.digests, d.sizeBytes, d.chunkSize),
      });
    }
    const manifest: RepoManifest = { backupId, createdAt: new Date().toISOString(), disks, metadataJson: req.metadataJson };
    await writeDurable(path.join(staging, 'manifest.json'), [serializeManifest(manifest)]);
    await fsyncDir(staging);
    try {
      await rename(staging, target);
    } catch (err) {
      if (isTargetTaken(err)) throw new AlreadyExistsError(`backup ${backupId} already exists in the repository at ${repo.dir}`);
      throw err;
    }
    await fsyncDir(path.dirname(target));
    repo.log.info({ backupId, disks: disks.map((x) => ({ name: x.name, chunks: x.chunks, zeroChunks: x.zeroChunks })) }, 'backup committed');
    return manifest;
  } catch (err) {
    await removeQuietly(staging);
    if (isDiskFull(err)) throw diskFullError(repo.dir, `backup ${backupId}`, err);
    throw err;
  }
}
