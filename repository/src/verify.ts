/**
 * Verification of a committed backup: each index against the hash its
 * manifest recorded and against the manifest's content hash, then every
 * distinct chunk the indexes reference, decoded and re-hashed. Problems are
 * reported, not thrown, so one pass names every bad chunk; each is named with
 * the first place the backup uses it.
 */
import {
  chunkLength,
  contentHashOf,
  digestHex,
  sha256,
  type BadChunkReport,
  type RepoDiskIndex,
  type RepoDiskManifest,
  type VerifyProgressReport,
} from '../../shared/src/mod.js';
import { decodeIndex } from './index-file.js';
import type { Repository } from './store.js';

/** How often a verification reports, and how many chunks it checks at once. */
export interface VerifyOptions {
  /** Report progress at least every this many chunks (default 64) ... */
  reportEvery?: number;
  /** ... or this often (default 500 ms), whichever comes first. */
  reportMs?: number;
  /** Chunks read and hashed concurrently (default 3): reading one file overlaps hashing another. */
  concurrency?: number;
}

interface Ref {
  digest: Buffer;
  disk: string;
  offset: number;
  length: number;
}

/** Checks one disk's index; returns it when it can be used to check chunks. */
async function checkIndex(repo: Repository, backupId: string, disk: RepoDiskManifest, bad: BadChunkReport[]): Promise<RepoDiskIndex | undefined> {
  const problem = (reason: string) => bad.push({ digestHex: '', reason: `index: ${reason}`, disk: disk.name, offset: 0 });
  let file: Buffer;
  try {
    file = (await repo.indexFile(backupId, disk.name)).file;
  } catch (err) {
    problem((err as Error).message);
    return undefined;
  }
  const sha = sha256(file).toString('hex');
  if (sha !== disk.indexSha256) problem(`the index file hashes to ${sha}, the manifest says ${disk.indexSha256}`);
  let index: RepoDiskIndex;
  try {
    index = decodeIndex(file, `index of disk '${disk.name}'`);
  } catch (err) {
    problem((err as Error).message);
    return undefined;
  }
  if (index.sizeBytes !== disk.sizeBytes || index.chunkSize !== disk.chunkSize || index.digests.length !== disk.chunks) {
    problem(`describes ${index.digests.length} chunks of ${index.chunkSize} bytes over ${index.sizeBytes} bytes; the manifest says ${disk.chunks} of ${disk.chunkSize} over ${disk.sizeBytes}`);
    return undefined;
  }
  const zeros = index.digests.reduce((n, d) => n + (d.length === 0 ? 1 : 0), 0);
  if (zeros !== disk.zeroChunks) problem(`lists ${zeros} all-zero chunks, the manifest says ${disk.zeroChunks}`);
  const h = contentHashOf(index.digests, index.sizeBytes, index.chunkSize);
  if (h !== disk.contentHash) problem(`its digests give content hash ${h}, the manifest says ${disk.contentHash}`);
  return index;
}

/** Yields progress; the last report has `done: true`. An unknown backup is NotFoundError (thrown). */
export async function* verifyBackup(repo: Repository, backupId: string, opts: VerifyOptions = {}): AsyncGenerator<VerifyProgressReport> {
  const manifest = await repo.manifest(backupId);
  const every = opts.reportEvery ?? 64;
  const reportMs = opts.reportMs ?? 500;
  const concurrency = Math.max(1, opts.concurrency ?? 3);
  const bad: BadChunkReport[] = [];
  const refs = new Map<string, Ref>();
  for (const d of manifest.disks) {
    const index = await checkIndex(repo, backupId, d, bad);
    if (!index) continue;
    index.digests.forEach((digest, i) => {
      if (digest.length === 0) return;
      const key = digest.toString('hex');
      if (!refs.has(key)) {
        refs.set(key, { digest, disk: d.name, offset: i * index.chunkSize, length: chunkLength(i, index.sizeBytes, index.chunkSize) });
      }
    });
  }
  const all = [...refs.values()];
  const total = all.length;
  yield { chunksChecked: 0, chunksTotal: total, bad: bad.splice(0), done: false };

  const check = async (r: Ref): Promise<BadChunkReport | null> => {
    const got = await repo.inspectChunk(r.digest, r.length).catch((err: unknown) => ({ ok: false as const, missing: false, reason: (err as Error).message }));
    return got.ok ? null : { digestHex: digestHex(r.digest), reason: got.reason, disk: r.disk, offset: r.offset };
  };
  const ahead: Promise<BadChunkReport | null>[] = [];
  let next = 0;
  let checked = 0;
  let last = performance.now();
  while (checked < total) {
    while (ahead.length < concurrency && next < total) ahead.push(check(all[next++]!));
    const problem = await ahead.shift()!;
    checked++;
    if (problem) {
      bad.push(problem);
      repo.log.warn({ backupId, digest: problem.digestHex, disk: problem.disk, offset: problem.offset, reason: problem.reason }, 'bad chunk');
    }
    const now = performance.now();
    if (checked % every === 0 || now - last >= reportMs) {
      last = now;
      yield { chunksChecked: checked, chunksTotal: total, bad: bad.splice(0), done: false };
    }
  }
  yield { chunksChecked: checked, chunksTotal: total, bad: bad.splice(0), done: true };
}
