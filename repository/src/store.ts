/**
 * A content-addressed backup repository on a directory:
 *
 *   repo.json                         {format, chunkSize}
 *   chunks/<first 4 hex>/<64 hex>     chunk files (chunk-file.ts), named by the SHA-256 of the raw content
 *   backups/<backupId>/<disk>.index   index files (index-file.ts)
 *   backups/<backupId>/manifest.json  the commit
 *   tmp/                              files being written
 *
 * Every file is written under tmp/, fsynced and renamed into place. A backup
 * is assembled in a staging directory under tmp/ (indexes first, then the
 * manifest) and appears with one rename of that directory: readers never see
 * a backup directory without its manifest, and two commits of one id cannot
 * both win (the second rename fails on the non-empty target). Chunks that an
 * interrupted upload left behind are unreferenced but harmless, and a retry
 * reuses them.
 *
 * One process owns a repository directory for writing (the coordinator's
 * embedded repository or `doppel repo serve`).
 */
import { mkdir, open, readFile, readdir, rename, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import lz4 from 'lz4';
import {
  AbortedError,
  DataCorruptionError,
  DIGEST_BYTES,
  InvalidArgumentError,
  MAX_MISSING_QUERY,
  MAX_READ_CHUNKS,
  NotFoundError,
  REPO_FORMAT,
  REPOSITORY_MAX_MESSAGE_BYTES,
  SharedBufferPool,
  checkChunkShape,
  decodeChunk,
  digestHex,
  isAllZero,
  isValidName,
  requireName,
  sha256Async,
  type EncodedChunk,
  type Logger,
  type RepoDiskIndex,
  type RepoInfo,
  type RepoManifest,
} from '../../shared/src/mod.js';
import { chunkHeader, parseChunkFile, CHUNK_HEADER_BYTES } from './chunk-file.js';
import { decodeIndex } from './index-file.js';
import { diskFullError, fsyncDir, isDiskFull, isNotFound, removeQuietly, tmpPath, writeDurable } from './atomic.js';
import { commitBackup, type CommitRequest } from './commit.js';
import { prepareRepositoryDir } from './repo-dir.js';
import { parseManifest } from './manifest.js';
import { verifyBackup } from './verify.js';

/** Options of `Repository.open`. */
export interface RepositoryOptions {
  dir: string;
  log: Logger;
  /** Chunk size of a new repository (default 4 MiB); an existing one keeps its own, and a different value here is refused. */
  chunkSize?: number;
}

/** What reading a chunk found: the chunk, or why it cannot be used. */
export type ChunkInspection = { ok: true; chunk: EncodedChunk; release: () => void } | { ok: false; missing: boolean; reason: string };

/** Concurrent stat() calls when checking many digests. */
const STAT_CONCURRENCY = 64;
/** Chunks being decoded and hashed at once, over all calls (8 x 4 MiB at most). */
const SCRATCH_BUFFERS = 8;
/** Chunk files read at once, over all calls; ReadChunks holds one until grpc-js has sent it. */
const FILE_BUFFERS = 16;

/** One repository directory: chunks, indexes, manifests (see the layout above). */
export class Repository {
  private readonly chunkDirs = new Set<string>();
  /** Decode buffers shared by every call: bounds the memory that verification takes. */
  private readonly scratch: SharedBufferPool;
  /** Chunk files being read (verify, ReadChunks), plain memory: they are sent or decoded, never hashed in place. */
  private readonly files: SharedBufferPool;
  /** Backup ids being committed right now in this process. */
  readonly committing = new Set<string>();

  private constructor(
    readonly dir: string,
    readonly chunkSize: number,
    readonly log: Logger,
  ) {
    this.scratch = new SharedBufferPool(chunkSize, SCRATCH_BUFFERS);
    this.files = new SharedBufferPool(CHUNK_HEADER_BYTES + lz4.encodeBound(chunkSize), FILE_BUFFERS, false);
  }

  /** Opens the repository at `dir`, creating it (and the directory) when there is none. */
  static async open(opts: RepositoryOptions): Promise<Repository> {
    const { dir, chunkSize } = await prepareRepositoryDir(opts.dir, opts.chunkSize, opts.log);
    return new Repository(dir, chunkSize, opts.log);
  }

  get tmpDir(): string {
    return path.join(this.dir, 'tmp');
  }

  backupDir(backupId: string): string {
    return path.join(this.dir, 'backups', backupId);
  }

  info(): RepoInfo {
    return { format: REPO_FORMAT, chunkSize: this.chunkSize, maxMissingQuery: MAX_MISSING_QUERY, maxReadChunks: MAX_READ_CHUNKS, maxMessageBytes: REPOSITORY_MAX_MESSAGE_BYTES };
  }

  chunkPath(digest: Buffer): string {
    const hex = digest.toString('hex');
    return path.join(this.dir, 'chunks', hex.slice(0, 4), hex);
  }

  private requireDigest(digest: Buffer, what: string): void {
    if (digest.length !== DIGEST_BYTES) throw new InvalidArgumentError(`${what} must be ${DIGEST_BYTES} bytes (got ${digest.length})`);
  }

  /** True when a chunk file exists with at least a header and one payload byte. */
  async hasChunk(digest: Buffer): Promise<boolean> {
    this.requireDigest(digest, 'chunk digest');
    try {
      return (await stat(this.chunkPath(digest))).size > CHUNK_HEADER_BYTES;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Runs `fn` on a chunk's raw content, decoded (or copied) into a pooled shared
   * buffer: no allocation per chunk, and the hash workers read it in place.
   */
  private async withRaw<T>(c: EncodedChunk, fn: (raw: Buffer) => Promise<T>): Promise<T> {
    const scratch = await this.scratch.acquire();
    try {
      let raw: Buffer;
      if (c.compressed) raw = decodeChunk(c, scratch);
      else {
        raw = scratch.subarray(0, c.data.length);
        c.data.copy(raw);
      }
      return await fn(raw);
    } finally {
      this.scratch.release(scratch);
    }
  }

  /** Indices (into `digests`) of the chunks not stored; at most MAX_MISSING_QUERY digests. */
  async missingChunks(digests: readonly Buffer[]): Promise<number[]> {
    if (digests.length > MAX_MISSING_QUERY) {
      throw new InvalidArgumentError(`at most ${MAX_MISSING_QUERY} digests per query (got ${digests.length})`);
    }
    digests.forEach((d, i) => this.requireDigest(d, `digest ${i}`));
    const present = new Array<boolean>(digests.length);
    for (let off = 0; off < digests.length; off += STAT_CONCURRENCY) {
      const slice = digests.slice(off, off + STAT_CONCURRENCY);
      const got = await Promise.all(slice.map((d) => this.hasChunk(d)));
      got.forEach((p, k) => (present[off + k] = p));
    }
    const missing: number[] = [];
    present.forEach((p, i) => {
      if (!p) missing.push(i);
    });
    return missing;
  }

  /**
   * Verifies and stores one chunk: its framing, that it decodes, that it is not
   * all zeros (those are never stored) and that it hashes to its digest. A
   * chunk already stored is left alone.
   *
   * The chunk file is fsynced before it is renamed into place. The directory
   * that makes the new name durable is fsynced here too, unless `dirsToSync`
   * is given: then it is added there, for one `syncDirs` at the end of a
   * stream (on a real disk each fsync can cost a journal commit; a stream of
   * small compressed chunks would pay two per chunk).
   */
  async putChunk(c: EncodedChunk, dirsToSync?: Set<string>): Promise<{ stored: boolean; bytes: number }> {
    checkChunkShape(c, this.chunkSize);
    const name = digestHex(c.digest);
    // Each step below mostly waits (for a hash worker, for the thread pool, for the disk), so the independent
    // ones overlap: whether the chunk is stored already is asked while it is verified, and its prefix
    // directory is made while the temp file is written. Nothing is renamed into place before both are done.
    const held = this.hasChunk(c.digest);
    held.catch(() => undefined);
    const got = await this.withRaw(c, (raw) => {
      if (isAllZero(raw)) {
        throw new InvalidArgumentError(`chunk ${name} is all zeros: zero chunks are never stored (index them with an empty digest)`);
      }
      return sha256Async(raw);
    });
    if (!got.equals(c.digest)) {
      throw new DataCorruptionError(`chunk ${name} rejected: its content hashes to ${digestHex(got)}`);
    }
    if (await held) return { stored: false, bytes: 0 };
    const final = this.chunkPath(c.digest);
    const dir = path.dirname(final);
    const tmp = tmpPath(this.tmpDir, name.slice(0, 16));
    try {
      const dirs = dirsToSync ?? new Set<string>();
      const made = this.chunkDirs.has(dir)
        ? undefined
        : mkdir(dir, { recursive: true }).then((first) => {
            // A new prefix directory is itself an entry of chunks/ to make durable.
            if (first !== undefined) dirs.add(path.dirname(dir));
            this.chunkDirs.add(dir);
          });
      made?.catch(() => undefined);
      const header = chunkHeader(c.rawLength, c.compressed, c.data.length);
      await writeDurable(tmp, [header, c.data]);
      await made;
      // A concurrent upload may have stored the same chunk meanwhile: same name, same content.
      await rename(tmp, final);
      dirs.add(dir);
      if (!dirsToSync) await this.syncDirs(dirs);
      return { stored: true, bytes: header.length + c.data.length };
    } catch (err) {
      await removeQuietly(tmp);
      if (isDiskFull(err)) throw diskFullError(this.dir, `chunk ${name}`, err);
      throw err;
    }
  }

  /** fsyncs directories (a few at a time), making the renames into them durable. */
  async syncDirs(dirs: Iterable<string>): Promise<void> {
    const all = [...dirs];
    for (let off = 0; off < all.length; off += 16) await Promise.all(all.slice(off, off + 16).map((d) => fsyncDir(d)));
  }

  /**
   * Reads a chunk into a pooled buffer and checks it: the file's framing, that
   * it decodes to its raw length (`expectLength` when given) and that the
   * content hashes to its name. A good chunk's data stays valid until `release()`.
   */
  async openChunk(digest: Buffer, expectLength?: number): Promise<ChunkInspection> {
    this.requireDigest(digest, 'chunk digest');
    const name = digestHex(digest);
    const buf = await this.files.acquire();
    let keep = false;
    try {
      let fh: FileHandle;
      try {
        fh = await open(this.chunkPath(digest), 'r');
      } catch (err) {
        if (isNotFound(err)) return { ok: false, missing: true, reason: 'missing' };
        return { ok: false, missing: false, reason: `unreadable: ${(err as Error).message}` };
      }
      let size: number;
      try {
        size = (await fh.stat()).size;
        if (size > buf.length) return { ok: false, missing: false, reason: `file is ${size} bytes, more than any chunk takes` };
        for (let at = 0; at < size; ) {
          const { bytesRead } = await fh.read(buf, at, size - at, at);
          if (bytesRead === 0) return { ok: false, missing: false, reason: `file shrank to ${at} bytes while read` };
          at += bytesRead;
        }
      } catch (err) {
        return { ok: false, missing: false, reason: `unreadable: ${(err as Error).message}` };
      } finally {
        await fh.close();
      }
      const f = parseChunkFile(buf.subarray(0, size), name);
      const chunk: EncodedChunk = { digest, rawLength: f.rawLength, compressed: f.compressed, data: f.payload };
      checkChunkShape(chunk, this.chunkSize);
      if (expectLength !== undefined && chunk.rawLength !== expectLength) {
        return { ok: false, missing: false, reason: `holds ${chunk.rawLength} bytes where the index needs ${expectLength}` };
      }
      const got = await this.withRaw(chunk, (raw) => sha256Async(raw));
      if (!got.equals(digest)) return { ok: false, missing: false, reason: `content hashes to ${digestHex(got)}, not to its name` };
      keep = true;
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        this.files.release(buf);
      };
      return { ok: true, chunk, release };
    } catch (err) {
      return { ok: false, missing: false, reason: (err as Error).message };
    } finally {
      if (!keep) this.files.release(buf);
    }
  }

  /** Checks a stored chunk (see `openChunk`) without keeping it. */
  async inspectChunk(digest: Buffer, expectLength?: number): Promise<ChunkInspection> {
    const r = await this.openChunk(digest, expectLength);
    if (r.ok) r.release();
    return r;
  }

  /**
   * A verified chunk, as stored (compressed or raw), in a buffer of its own.
   * Missing: NotFoundError; damaged: DataCorruptionError naming the digest.
   */
  async readChunk(digest: Buffer, expectLength?: number): Promise<EncodedChunk> {
    const r = await this.readChunkPooled(digest, expectLength);
    try {
      return { ...r.chunk, data: Buffer.from(r.chunk.data) };
    } finally {
      r.release();
    }
  }

  /** As `readChunk`, but the data is a pooled buffer's until `release()`. */
  async readChunkPooled(digest: Buffer, expectLength?: number): Promise<{ chunk: EncodedChunk; release: () => void }> {
    const r = await this.openChunk(digest, expectLength);
    if (r.ok) return r;
    const name = digestHex(digest);
    if (r.missing) throw new NotFoundError(`chunk ${name} is not in the repository at ${this.dir}`);
    throw new DataCorruptionError(`chunk ${name} in the repository at ${this.dir} is corrupt: ${r.reason}`);
  }

  /** Commits a backup (see commit.ts). */
  async commit(req: CommitRequest): Promise<RepoManifest> {
    if (this.committing.has(req.backupId)) throw new AbortedError(`backup ${req.backupId} is being committed by another call`);
    this.committing.add(req.backupId);
    try {
      return await commitBackup(this, req);
    } finally {
      this.committing.delete(req.backupId);
    }
  }

  /** A committed backup's manifest; NotFoundError when there is none. */
  async manifest(backupId: string): Promise<RepoManifest> {
    requireName('backup id', backupId);
    const file = path.join(this.backupDir(backupId), 'manifest.json');
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`backup ${backupId} is not in the repository at ${this.dir}`);
      throw err;
    }
    return parseManifest(text, `backup ${backupId} in the repository at ${this.dir}`);
  }

  /** The raw index file of a committed backup's disk, and its manifest entry. */
  async indexFile(backupId: string, disk: string): Promise<{ file: Buffer; expectSha256: string }> {
    const m = await this.manifest(backupId);
    requireName('disk name', disk);
    const d = m.disks.find((x) => x.name === disk);
    if (!d) throw new NotFoundError(`backup ${backupId} has no disk '${disk}' (it has ${m.disks.map((x) => `'${x.name}'`).join(', ')})`);
    try {
      return { file: await readFile(path.join(this.backupDir(backupId), `${disk}.index`)), expectSha256: d.indexSha256 };
    } catch (err) {
      if (isNotFound(err)) throw new DataCorruptionError(`backup ${backupId}: the index of disk '${disk}' is missing from the repository at ${this.dir}`);
      throw err;
    }
  }

  /** A disk's index, checked against the hash its manifest recorded. */
  async index(backupId: string, disk: string): Promise<RepoDiskIndex> {
    const { file, expectSha256 } = await this.indexFile(backupId, disk);
    const got = (await sha256Async(file)).toString('hex');
    if (got !== expectSha256) {
      throw new DataCorruptionError(`backup ${backupId}: the index of disk '${disk}' hashes to ${got}, its manifest says ${expectSha256}`);
    }
    return decodeIndex(file, `backup ${backupId} index of disk '${disk}'`);
  }

  /** Committed backups, oldest first (the newest `limit` when limit > 0); metadata only when asked for. */
  async list(opts: { withMetadata?: boolean; limit?: number } = {}): Promise<RepoManifest[]> {
    const out: RepoManifest[] = [];
    for (const id of await readdir(path.join(this.dir, 'backups'))) {
      if (!isValidName(id)) continue;
      try {
        const m = await this.manifest(id);
        out.push(opts.withMetadata ? m : { ...m, metadataJson: '' });
      } catch (err) {
        // Not a committed backup (no manifest) or an unreadable one: listed by verify, not here.
        if (!(err instanceof NotFoundError)) this.log.warn({ err, backupId: id }, 'backup manifest unreadable');
      }
    }
    out.sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.backupId.localeCompare(b.backupId));
    return opts.limit ? out.slice(-opts.limit) : out;
  }

  /** Re-hashes every chunk a backup references; see verify.ts. */
  verify(backupId: string): ReturnType<typeof verifyBackup> {
    return verifyBackup(this, backupId);
  }
}
