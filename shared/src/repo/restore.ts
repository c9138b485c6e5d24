/**
 * Restores one disk from the repository onto a blank target: all-zero chunks
 * are skipped (the target already reads zeros there), the others are fetched
 * in batches, each checked against its digest before it is written.
 */
import { DataCorruptionError } from '../errors.js';
import type { RepositoryClient } from './client.js';
import { contentHashOf, digestHex } from './content-hash.js';
import { checkDiskIndex, chunkLength, MAX_READ_CHUNKS, type RepoDiskIndex } from './types.js';

/** Progress of a restore, per disk. */
export interface RestoreProgress {
  disk: string;
  chunksDone: number;
  chunksTotal: number;
  bytesWritten: number;
}

/** Options of `restoreDisk`. */
export interface RestoreOptions {
  /** Distinct chunks per ReadChunks call (default 64, at most 256). */
  batchChunks?: number;
  /** The manifest's content hash for this disk: the index must match it before anything is fetched. */
  expectContentHash?: string;
  /** Called at most every `progressIntervalMs` (default 250), and once at the end. */
  onProgress?: (p: RestoreProgress) => void;
  progressIntervalMs?: number;
}

/** What a restore wrote, and the content hash of it. */
export interface DiskRestoreStats {
  bytesWritten: number;
  chunksFetched: number;
  chunksZero: number;
  chunksTotal: number;
  /** The content hash of what was written, from the digests of the bytes as received. */
  contentHash: string;
}

/**
 * Restores `index` through `writeChunk(i, data)` (chunk `i` at offset `i * chunkSize`;
 * `data` belongs to the callee). A chunk that does not match its digest is
 * DataCorruptionError naming it, and nothing more is written after it.
 */
export async function restoreDisk(
  client: RepositoryClient,
  index: RepoDiskIndex,
  writeChunk: (i: number, data: Buffer) => Promise<void>,
  opts: RestoreOptions = {},
): Promise<DiskRestoreStats> {
  checkDiskIndex(index);
  const { disk, sizeBytes, chunkSize, digests } = index;
  if (opts.expectContentHash !== undefined) {
    const h = contentHashOf(digests, sizeBytes, chunkSize);
    if (h !== opts.expectContentHash) {
      throw new DataCorruptionError(`disk '${disk}': its index hashes to ${h}, the manifest says ${opts.expectContentHash}`);
    }
  }
  const batchMax = Math.min(MAX_READ_CHUNKS, Math.max(1, opts.batchChunks ?? 64));
  const n = digests.length;
  // Filled with each digest as verified against the received bytes; zero chunks stay empty.
  const written = new Array<Buffer>(n).fill(Buffer.alloc(0));
  const stats: DiskRestoreStats = { bytesWritten: 0, chunksFetched: 0, chunksZero: 0, chunksTotal: n, contentHash: '' };
  let chunksDone = 0;
  const interval = opts.progressIntervalMs ?? 250;
  let lastProgress = performance.now();
  const progress = (final: boolean) => {
    if (!opts.onProgress) return;
    const now = performance.now();
    if (!final && now - lastProgress < interval) return;
    lastProgress = now;
    opts.onProgress({ disk, chunksDone, chunksTotal: n, bytesWritten: stats.bytesWritten });
  };

  // One batch: distinct digests, each with every chunk number that holds it.
  let batch: Buffer[] = [];
  let at = new Map<string, number[]>();
  const flush = async () => {
    if (batch.length === 0) return;
    const ds = batch;
    const where = at;
    batch = [];
    at = new Map();
    await client.readChunks(ds, async (k, raw) => {
      const digest = ds[k]!;
      stats.chunksFetched++;
      for (const i of where.get(digest.toString('hex')) ?? []) {
        const len = chunkLength(i, sizeBytes, chunkSize);
        if (raw.length !== len) {
          throw new DataCorruptionError(`disk '${disk}' chunk ${i}: chunk ${digestHex(digest)} holds ${raw.length} bytes, expected ${len}`);
        }
        await writeChunk(i, raw);
        written[i] = digest;
        stats.bytesWritten += len;
        chunksDone++;
      }
      progress(false);
    });
  };

  for (let i = 0; i < n; i++) {
    const d = digests[i]!;
    if (d.length === 0) {
      stats.chunksZero++;
      chunksDone++;
      continue;
    }
    const key = d.toString('hex');
    const list = at.get(key);
    if (list) {
      list.push(i);
      continue;
    }
    at.set(key, [i]);
    batch.push(d);
    if (batch.length >= batchMax) await flush();
  }
  await flush();
  for (let i = 0; i < n; i++) {
    if (digests[i]!.length !== 0 && written[i]!.length === 0) {
      throw new DataCorruptionError(`disk '${disk}' chunk ${i}: chunk ${digestHex(digests[i]!)} was never received`);
    }
  }
  stats.contentHash = contentHashOf(written, sizeBytes, chunkSize);
  progress(true);
  return stats;
}
