/**
 * `qemu-img` wrappers for the qemu driver's disk images: create (optionally over a backing file), info (with the
 * backing chain), map (allocated extents), convert and check. Every call runs `qemu-img` through execFile (never
 * a shell) with a timeout, and a failure names the image and carries qemu-img's own stderr.
 *
 * Locks: a QEMU that has an image open read-write holds QEMU's "write" lock on it, and qemu-img then refuses to
 * open it ("Failed to get shared \"write\" lock"): that is an ImageInUseError. Once an external snapshot has made
 * an image a backing file, QEMU reopens it read-only and drops the lock, so a frozen base can be mapped and read.
 * `forceShare` (qemu-img -U) skips the lock, but what it reads of an image a QEMU is writing is stale: QEMU keeps
 * qcow2 metadata (L2 tables) in its cache, so fresh writes do not show yet.
 */
import { execFile } from 'node:child_process';
import { isAbsolute } from 'node:path';
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
} from '../../../../shared/src/errors.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';

/** The `qemu-img` binary: `DOPPEL_QEMU_IMG`, else `qemu-img` on the PATH. */
export function defaultQemuImgBinary(): string {
  return process.env.DOPPEL_QEMU_IMG || 'qemu-img';
}

/** Default bound on one qemu-img run; converts of big images pass their own. */
export const QEMU_IMG_TIMEOUT_MS = 60_000;
/** qemu-img's JSON output can be long (a fragmented image has many extents). */
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;
/** Our cap on image sizes: byte offsets stay exact in a JS number. */
const MAX_IMAGE_BYTES = 2 ** 50;

export type ImageFormat = 'qcow2' | 'raw';

/** qemu-img failed for a reason none of the more specific classes covers; stderr is in the message. */
export class QemuImgError extends FailedPreconditionError {
  override name = 'QemuImgError';
  readonly args: readonly string[];
  readonly stderr: string;
  readonly exitCode: number | null;
  constructor(message: string, args: readonly string[], stderr: string, exitCode: number | null, options?: { cause?: unknown }) {
    super(message, options);
    this.args = args;
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** Another process (a QEMU) holds the image's write lock. */
export class ImageInUseError extends FailedPreconditionError {
  override name = 'ImageInUseError';
}

export interface QemuImgOptions {
  binary?: string;
  /** Default QEMU_IMG_TIMEOUT_MS. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs qemu-img with `args` and resolves with its stdout. `what` names the operation and image for messages
 * ("qemu-img map /x.qcow2"). NotFoundError when the binary or an image is missing, ImageInUseError on a lock
 * conflict, DeadlineExceededError on the timeout, ResourceExhaustedError when the disk is full, else QemuImgError.
 */
export function runQemuImg(args: string[], what: string, opts: QemuImgOptions = {}): Promise<string> {
  const binary = opts.binary ?? defaultQemuImgBinary();
  const timeoutMs = opts.timeoutMs ?? QEMU_IMG_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      args,
      { encoding: 'utf8', maxBuffer: MAX_OUTPUT_BYTES, timeout: timeoutMs, killSignal: 'SIGKILL', signal: opts.signal, env: { ...process.env, LC_ALL: 'C' } },
      (err, stdout, stderr) => {
        if (!err) {
          resolve(stdout);
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean; code?: string | number | null };
        const said = stderr.trim();
        const suffix = said ? `: ${said}` : '';
        if (e.code === 'ENOENT' && !said) {
          reject(new NotFoundError(`${binary} not found (install qemu-utils, or set DOPPEL_QEMU_IMG)`, { cause: err }));
        } else if (e.name === 'AbortError') {
          reject(new DeadlineExceededError(`${what} was aborted`, { cause: err }));
        } else if (e.killed) {
          reject(new DeadlineExceededError(`${what} took over ${timeoutMs} ms and was killed${suffix}`, { cause: err }));
        } else if (/Failed to get (shared )?"?(write|consistent read)"? lock/i.test(said)) {
          reject(new ImageInUseError(`${what}: the image is in use by another process (a running QEMU holds its lock)${suffix}`, { cause: err }));
        } else if (/No such file or directory/i.test(said)) {
          reject(new NotFoundError(`${what}${suffix}`, { cause: err }));
        } else if (/No space left on device/i.test(said)) {
          reject(new ResourceExhaustedError(`${what}: no space left on device${suffix}`, { cause: err }));
        } else {
          const code = typeof e.code === 'number' ? e.code : null;
          reject(new QemuImgError(`${what} failed (${code === null ? 'no exit code' : `exit ${code}`})${suffix || `: ${e.message}`}`, args, stderr, code, { cause: err }));
        }
      },
    );
  });
}

/** An image path must be absolute (no protocol prefix can then be read into it) and free of control characters. */
export function checkImagePath(path: string, field = 'image path'): void {
  if (typeof path !== 'string' || !path || !isAbsolute(path)) throw new InvalidArgumentError(`${field} ${JSON.stringify(path)} is not an absolute path`);
  if (/[\u0000-\u001f\u007f]/.test(path)) throw new InvalidArgumentError(`${field} ${JSON.stringify(path)} holds a control character`);
}

function checkFormat(format: string, field: string): asserts format is ImageFormat {
  if (format !== 'qcow2' && format !== 'raw') throw new InvalidArgumentError(`${field} ${JSON.stringify(format)} is not qcow2 or raw`);
}

export interface CreateQcow2Options extends QemuImgOptions {
  /** Virtual size in bytes (a multiple of 512; doppel's own disks are whole 64 KiB blocks). Needed unless there is a backing file. */
  sizeBytes?: number;
  backing?: {
    /** The backing image (absolute). */
    path: string;
    /** Default qcow2. */
    format?: ImageFormat;
    /**
     * What the overlay's header names as its backing file (default `path`). A name relative to the overlay's
     * directory keeps a chain valid wherever a shared datastore is mounted.
     */
    headerName?: string;
    /**
     * Do not open the backing file (qemu-img -u); needs `sizeBytes`. For a base a running QEMU holds, where
     * opening it is both unnecessary and subject to its locks.
     */
    unsafe?: boolean;
  };
  /** qcow2 cluster size (default 64 KiB, the block size: one cluster per dirty-bitmap bit). */
  clusterSize?: number;
}

/** Creates a qcow2 image (replacing a file at `path`). */
export async function createQcow2(path: string, opts: CreateQcow2Options): Promise<void> {
  checkImagePath(path);
  const args = ['create', '-q', '-f', 'qcow2'];
  const options = [`cluster_size=${opts.clusterSize ?? DISK_BLOCK_SIZE}`];
  if (opts.clusterSize !== undefined && (!Number.isSafeInteger(opts.clusterSize) || opts.clusterSize < 512 || opts.clusterSize > 2 * 1024 * 1024 || (opts.clusterSize & (opts.clusterSize - 1)) !== 0)) {
    throw new InvalidArgumentError(`cluster size ${opts.clusterSize} is not a power of two in 512..2 MiB`);
  }
  args.push('-o', options.join(','));
  if (opts.backing) {
    const b = opts.backing;
    checkImagePath(b.path, 'backing image path');
    const format = b.format ?? 'qcow2';
    checkFormat(format, 'backing format');
    const headerName = b.headerName ?? b.path;
    if (!headerName || /[\u0000-\u001f\u007f]/.test(headerName) || headerName.startsWith('-')) {
      throw new InvalidArgumentError(`backing header name ${JSON.stringify(headerName)} is empty, starts with '-' or holds a control character`);
    }
    if (!isAbsolute(headerName) && /^[a-z0-9+.-]+:/i.test(headerName)) {
      throw new InvalidArgumentError(`backing header name ${JSON.stringify(headerName)} reads as a protocol prefix: use ./${headerName}`);
    }
    if (b.unsafe && opts.sizeBytes === undefined) throw new InvalidArgumentError(`an unsafe create over ${b.path} needs sizeBytes`);
    args.push('-b', headerName, '-F', format);
    if (b.unsafe) args.push('-u');
  } else if (opts.sizeBytes === undefined) {
    throw new InvalidArgumentError(`creating ${path}: sizeBytes is needed without a backing file`);
  }
  args.push(path);
  if (opts.sizeBytes !== undefined) {
    checkSize(opts.sizeBytes, path);
    args.push(String(opts.sizeBytes));
  }
  await runQemuImg(args, `qemu-img create ${path}`, opts);
}

function checkSize(sizeBytes: number, path: string): void {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes > MAX_IMAGE_BYTES || sizeBytes % 512 !== 0) {
    throw new InvalidArgumentError(`size of ${path}: ${sizeBytes} is not a positive multiple of 512 bytes up to 2^50`);
  }
}

/** A persistent dirty bitmap as stored in a qcow2 image. */
export interface StoredBitmap {
  name: string;
  granularity: number;
  /** "auto": enabled (it records writes); "in-use": the image was not closed cleanly, so the bitmap is unusable. */
  flags: string[];
}

/** One image of `qemu-img info`, narrowed. */
export interface ImageInfo {
  filename: string;
  format: string;
  virtualSize: number;
  /** Bytes the file takes on the host. */
  actualSize: number;
  clusterSize: number | null;
  /** As the header names it. */
  backingFilename: string | null;
  /** Resolved against the image's directory. */
  fullBackingFilename: string | null;
  backingFormat: string | null;
  /** The qcow2 dirty flag (lazy refcounts left unflushed). */
  dirty: boolean;
  /** qcow2: the image is marked corrupt. */
  corrupt: boolean;
  bitmaps: StoredBitmap[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
const int = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) ? v : 0);

function parseImageInfo(o: Obj): ImageInfo {
  const fs = isObj(o['format-specific']) && isObj(o['format-specific'].data) ? o['format-specific'].data : {};
  const bitmaps = Array.isArray(fs.bitmaps)
    ? fs.bitmaps.filter(isObj).map((b) => ({
        name: str(b.name) ?? '',
        granularity: int(b.granularity),
        flags: Array.isArray(b.flags) ? b.flags.filter((f): f is string => typeof f === 'string') : [],
      }))
    : [];
  return {
    filename: str(o.filename) ?? '',
    format: str(o.format) ?? '',
    virtualSize: int(o['virtual-size']),
    actualSize: int(o['actual-size']),
    clusterSize: typeof o['cluster-size'] === 'number' ? o['cluster-size'] : null,
    backingFilename: str(o['backing-filename']),
    fullBackingFilename: str(o['full-backing-filename']),
    backingFormat: str(o['backing-filename-format']),
    dirty: o['dirty-flag'] === true,
    corrupt: fs.corrupt === true,
    bitmaps,
  };
}

export interface ImageInfoOptions extends QemuImgOptions {
  /** Also describe every image below it (top first). */
  backingChain?: boolean;
  /** qemu-img -U: do not take the lock (see the module comment for what that costs). */
  forceShare?: boolean;
  /** Default: probed by qemu-img (fine for images doppel made: the format is fixed in the header chain). */
  format?: ImageFormat;
}

/** `qemu-img info --output=json`: the image, then (with backingChain) its backing images, top first. */
export async function imageInfo(path: string, opts: ImageInfoOptions = {}): Promise<ImageInfo[]> {
  checkImagePath(path);
  const args = ['info', '--output=json'];
  if (opts.backingChain) args.push('--backing-chain');
  if (opts.forceShare) args.push('-U');
  if (opts.format !== undefined) {
    checkFormat(opts.format, 'format');
    args.push('-f', opts.format);
  }
  args.push(path);
  const what = `qemu-img info ${path}`;
  const parsed = parseJson(await runQemuImg(args, what, opts), what);
  const list = Array.isArray(parsed) ? parsed : [parsed];
  const infos = list.filter(isObj).map(parseImageInfo);
  if (infos.length === 0) throw new QemuImgError(`${what}: no image in its output`, args, '', 0);
  return infos;
}

/** One extent of `qemu-img map --output=json`. */
export interface MapExtent {
  start: number;
  length: number;
  /** 0: this image holds it; n: the n-th backing image down does; past the bottom for an unallocated range. */
  depth: number;
  /** Some image of the chain holds it (data or a zero cluster). */
  present: boolean;
  /** It reads as zeros. */
  zero: boolean;
  /** There is data behind it (not a hole or a zero cluster). */
  data: boolean;
  compressed: boolean;
  /** Host offset in the file at `depth`, for data extents. */
  offset: number | null;
}

export interface ImageMapOptions extends QemuImgOptions {
  forceShare?: boolean;
  format?: ImageFormat;
}

/** `qemu-img map --output=json` of the image and its backing chain, in offset order. */
export async function imageMap(path: string, opts: ImageMapOptions = {}): Promise<MapExtent[]> {
  checkImagePath(path);
  const args = ['map', '--output=json'];
  if (opts.forceShare) args.push('-U');
  if (opts.format !== undefined) {
    checkFormat(opts.format, 'format');
    args.push('-f', opts.format);
  }
  args.push(path);
  const what = `qemu-img map ${path}`;
  const parsed = parseJson(await runQemuImg(args, what, opts), what);
  if (!Array.isArray(parsed)) throw new QemuImgError(`${what}: the output is not a JSON array`, args, '', 0);
  return parsed.filter(isObj).map((e) => ({
    start: int(e.start),
    length: int(e.length),
    depth: int(e.depth),
    present: e.present === true,
    zero: e.zero === true,
    data: e.data === true,
    compressed: e.compressed === true,
    offset: typeof e.offset === 'number' ? e.offset : null,
  }));
}

/** Words of a one-bit-per-block bitmap. */
export function bitmapWords(blockCount: number): number {
  return Math.ceil(blockCount / 32);
}

/** Sets the bits of every block that [start, start + length) touches. */
export function setBlockRange(bits: Uint32Array, start: number, length: number, blockSize = DISK_BLOCK_SIZE): void {
  if (length <= 0) return;
  const first = Math.floor(start / blockSize);
  const end = Math.min(Math.ceil((start + length) / blockSize), bits.length * 32);
  for (let b = first; b < end; b++) bits[b >>> 5]! |= 1 << (b & 31);
}

export interface AllocationOptions {
  blockSize?: number;
  /**
   * Only extents this image (depth 0) or its first `maxDepth` backing images hold; by default the whole chain
   * (what a reader of the image sees). `maxDepth: 0` gives the blocks the top layer itself holds.
   */
  maxDepth?: number;
}

/**
 * One bit per block: set where some extent of the block has data behind it or does not read as zeros (data ||
 * !zero), the DiskView meaning of "allocated". A zero cluster (written as zeros) and a hole read as zeros with no
 * data: not allocated.
 */
export function allocationBitmap(extents: readonly MapExtent[], sizeBytes: number, opts: AllocationOptions = {}): Uint32Array {
  const blockSize = opts.blockSize ?? DISK_BLOCK_SIZE;
  const bits = new Uint32Array(bitmapWords(Math.ceil(sizeBytes / blockSize)));
  for (const e of extents) {
    if (opts.maxDepth !== undefined && (!e.present || e.depth > opts.maxDepth)) continue;
    if (e.data || !e.zero) setBlockRange(bits, e.start, e.length, blockSize);
  }
  return bits;
}

export interface ConvertOptions extends QemuImgOptions {
  /** Source format (default: probed). */
  sourceFormat?: ImageFormat;
  /** Default raw. */
  targetFormat?: ImageFormat;
  /** Source lock skipped (qemu-img -U). */
  forceShare?: boolean;
  /** Default QEMU_IMG_TIMEOUT_MS times ten: a convert moves the whole image. */
  timeoutMs?: number;
}

/**
 * `qemu-img convert`: the source as a reader sees it (its backing chain flattened) into a new image. Holes stay
 * sparse in a raw target (`-S 64k`), so a mostly empty disk costs little host space.
 */
export async function convertImage(source: string, target: string, opts: ConvertOptions = {}): Promise<void> {
  checkImagePath(source, 'source image path');
  checkImagePath(target, 'target image path');
  if (source === target) throw new InvalidArgumentError(`convert: source and target are the same file ${source}`);
  const targetFormat = opts.targetFormat ?? 'raw';
  checkFormat(targetFormat, 'target format');
  const args = ['convert', '-q', '-O', targetFormat, '-S', String(DISK_BLOCK_SIZE)];
  if (opts.forceShare) args.push('-U');
  if (opts.sourceFormat !== undefined) {
    checkFormat(opts.sourceFormat, 'source format');
    args.push('-f', opts.sourceFormat);
  }
  args.push(source, target);
  await runQemuImg(args, `qemu-img convert ${source} → ${target}`, { ...opts, timeoutMs: opts.timeoutMs ?? QEMU_IMG_TIMEOUT_MS * 10 });
}

/** `qemu-img check` narrowed: leaks are harmless space, corruptions are not. */
export interface CheckResult {
  corruptions: number;
  leaks: number;
  checkErrors: number;
}

/**
 * `qemu-img check --output=json` of a clean image. A damaged one (exit 2: corruptions, 3: leaked clusters) is a
 * QemuImgError with that exit code.
 */
export async function checkImage(path: string, opts: QemuImgOptions = {}): Promise<CheckResult> {
  checkImagePath(path);
  const args = ['check', '--output=json', path];
  const what = `qemu-img check ${path}`;
  const o = parseJson(await runQemuImg(args, what, opts), what);
  if (!isObj(o)) throw new QemuImgError(`${what}: the output is not a JSON object`, args, '', 0);
  return { corruptions: int(o.corruptions), leaks: int(o.leaks), checkErrors: int(o['check-errors']) };
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new QemuImgError(`${what}: output is not JSON: ${text.slice(0, 200)}`, [], '', 0, { cause: err });
  }
}
