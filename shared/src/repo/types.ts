/**
 * The backup repository's vocabulary, shared by the server (repository/src) and
 * the client side: limits, the shapes of indexes and manifests, chunk geometry.
 */
import { InvalidArgumentError } from '../errors.js';

/** On-disk format of a repository (repo.json, chunk files, index files). */
export const REPO_FORMAT = 1;
/** Disks are cut into fixed-size chunks of this size unless the repository was created with another. */
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
/** Chunk sizes a repository may be created with (a power of two in this range). */
export const MIN_CHUNK_SIZE = 64 * 1024;
/** 4 MiB: a raw chunk plus framing must fit one 8 MiB gRPC message. */
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024;
/** A SHA-256 digest. */
export const DIGEST_BYTES = 32;
/** Digests per MissingChunks request. */
export const MAX_MISSING_QUERY = 4096;
/** Digests per ReadChunks request. */
export const MAX_READ_CHUNKS = 256;
/** Disks per backup. */
export const MAX_BACKUP_DISKS = 64;
/** The caller's opaque metadata in a manifest. */
export const MAX_METADATA_BYTES = 1024 * 1024;
/** Largest disk a backup may hold (1 PiB); well inside Number.MAX_SAFE_INTEGER. */
export const MAX_DISK_BYTES = 2 ** 50;

/** One disk's chunk list. An empty digest stands for an all-zero chunk (never stored). */
export interface RepoDiskIndex {
  disk: string;
  sizeBytes: number;
  chunkSize: number;
  digests: Buffer[];
}

/** One disk in a manifest. */
export interface RepoDiskManifest {
  name: string;
  sizeBytes: number;
  chunkSize: number;
  chunks: number;
  zeroChunks: number;
  /** SHA-256 (hex) of the disk's index file as stored. */
  indexSha256: string;
  /** See `contentHashOf`: equal hashes mean equal disk contents. */
  contentHash: string;
}

/** A committed backup. */
export interface RepoManifest {
  backupId: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  disks: RepoDiskManifest[];
  /** Opaque to the repository: the caller's VM configuration and statistics ('' or JSON). */
  metadataJson: string;
}

/** What a repository tells its clients about itself. */
export interface RepoInfo {
  format: number;
  chunkSize: number;
  maxMissingQuery: number;
  maxReadChunks: number;
  maxMessageBytes: number;
}

/** One problem a verification found. `digestHex` is '' when an index, not a chunk, is at fault. */
export interface BadChunkReport {
  digestHex: string;
  reason: string;
  /** The first place the backup references the chunk. */
  disk: string;
  offset: number;
}

/** One progress report of a verification. */
export interface VerifyProgressReport {
  chunksChecked: number;
  /** Distinct non-zero chunks the backup references. */
  chunksTotal: number;
  /** Problems found since the previous report. */
  bad: BadChunkReport[];
  done: boolean;
}

/** Chunks a disk of `sizeBytes` is cut into. */
export function chunkCount(sizeBytes: number, chunkSize: number): number {
  return Math.ceil(sizeBytes / chunkSize);
}

/** Length of chunk `i`: `chunkSize`, except for a shorter last chunk. */
export function chunkLength(i: number, sizeBytes: number, chunkSize: number): number {
  return Math.min(chunkSize, sizeBytes - i * chunkSize);
}

/** A power of two from MIN_CHUNK_SIZE to MAX_CHUNK_SIZE. */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/**
 * Checks an index's shape: sizes in range, one digest per chunk, each 32 bytes or empty.
 * `chunkSize`, when given, is the only chunk size accepted.
 */
export function checkDiskIndex(index: RepoDiskIndex, chunkSize?: number): void {
  const what = `disk '${index.disk}'`;
  if (!Number.isSafeInteger(index.sizeBytes) || index.sizeBytes < 1 || index.sizeBytes > MAX_DISK_BYTES) {
    throw new InvalidArgumentError(`${what}: size must be 1 to ${MAX_DISK_BYTES} bytes (got ${index.sizeBytes})`);
  }
  if (chunkSize !== undefined && index.chunkSize !== chunkSize) {
    throw new InvalidArgumentError(`${what}: chunk size ${index.chunkSize} does not match the repository's ${chunkSize}`);
  }
  if (!isValidChunkSize(index.chunkSize)) {
    throw new InvalidArgumentError(`${what}: chunk size must be a power of two from ${MIN_CHUNK_SIZE} to ${MAX_CHUNK_SIZE} (got ${index.chunkSize})`);
  }
  const n = chunkCount(index.sizeBytes, index.chunkSize);
  if (index.digests.length !== n) {
    throw new InvalidArgumentError(`${what}: ${index.digests.length} digests for ${n} chunks`);
  }
  for (let i = 0; i < n; i++) {
    const len = index.digests[i]?.length ?? -1;
    if (len !== 0 && len !== DIGEST_BYTES) {
      throw new InvalidArgumentError(`${what}: digest of chunk ${i} is ${len} bytes (expected ${DIGEST_BYTES}, or 0 for an all-zero chunk)`);
    }
  }
}
