/**
 * Reading qcow2 disks through NBD: DiskViews over the NBD client in nbd-client.ts (re-exported here).
 *
 * Two servers serve the same protocol: `qemu-nbd --read-only` over an image file (openQcow2View: a frozen base
 * on the datastore, with no QEMU needed), and a running QEMU's own NBD server (`nbd-server-start` +
 * `block-export-add` of a read-only node: openQemuExportView, which is also how dirty bitmaps are read). Reading
 * through NBD keeps memory flat whatever the disk's size, reads holes as zeros without moving them (QEMU sends
 * NBD_REPLY_TYPE_OFFSET_HOLE chunks), and reads the whole backing chain as the guest sees it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError } from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';
import type { DiskView } from '../driver.js';
import { NbdClient, NbdProtocolError, NBD_STATE_HOLE, NBD_STATE_ZERO, settleAll } from './nbd-client.js';
import { allocationBitmap, bitmapWords, checkImagePath, convertImage, ImageInUseError, imageInfo, imageMap, setBlockRange, type ImageFormat } from './qcow2.js';
import { QmpError, type QmpClient } from './qmp.js';

export {
  NbdClient,
  NbdClosedError,
  NbdProtocolError,
  NbdRequestError,
  NBD_STATE_DIRTY,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
  type NbdConnectOptions,
  type NbdExtent,
} from './nbd-client.js';

/** Unallocated runs shorter than this (1 MiB) are read with their neighbours rather than skipped. */
const SKIP_HOLE_BLOCKS = 16;

// ---- DiskViews over NBD ----

/** Runs of blocks in [first, end) with the same allocation, for reads that skip what reads as zeros. */
function* allocationRuns(view: DiskView, first: number, end: number): Generator<{ start: number; count: number; allocated: boolean }> {
  let start = first;
  while (start < end) {
    const allocated = view.isAllocated(start);
    let b = start + 1;
    while (b < end && view.isAllocated(b) === allocated) b++;
    yield { start, count: b - start, allocated };
    start = b;
  }
}

function checkRead(view: DiskView, first: number, count: number, into: Buffer): void {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0 || first + count > view.blockCount) {
    throw new InvalidArgumentError(`disk ${view.name}: blocks [${first}, +${count}) are outside its ${view.blockCount} blocks`);
  }
  if (into.length < count * view.blockSize) throw new InvalidArgumentError(`disk ${view.name}: a ${into.length}-byte buffer cannot take ${count} blocks`);
}

/** One bit per block of `sizeBytes` bytes, set where `base:allocation` says the range has data or is not zero. */
export async function readAllocation(client: NbdClient, blockSize = DISK_BLOCK_SIZE): Promise<Uint32Array> {
  const bits = new Uint32Array(bitmapWords(Math.ceil(client.size / blockSize)));
  for (const e of await client.blockStatus('base:allocation', 0, client.size)) {
    // QEMU: HOLE = no data behind it, ZERO = reads as zeros. "Not allocated" needs both (like data || !zero).
    if ((e.flags & NBD_STATE_HOLE) === 0 || (e.flags & NBD_STATE_ZERO) === 0) setBlockRange(bits, e.offset, e.length, blockSize);
  }
  return bits;
}

/**
 * A DiskView over an NBD export: reads go to the server (runs of unallocated blocks are zero-filled without a
 * request); `allocation` (one bit per block) says which blocks are allocated, null meaning all. The export must
 * not change while the view is used: export frozen nodes only (a snapshot's base), never a disk the guest writes.
 */
export class NbdDiskView implements DiskView {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize = DISK_BLOCK_SIZE;
  readonly blockCount: number;
  private readonly client: NbdClient;
  private readonly allocation: Uint32Array | null;

  constructor(client: NbdClient, opts: { name: string; allocation: Uint32Array | null }) {
    this.client = client;
    this.name = opts.name;
    this.sizeBytes = client.size;
    this.blockCount = Math.ceil(client.size / DISK_BLOCK_SIZE);
    if (opts.allocation && opts.allocation.length < bitmapWords(this.blockCount)) {
      throw new InvalidArgumentError(`disk ${opts.name}: an allocation bitmap of ${opts.allocation.length} words is short for ${this.blockCount} blocks`);
    }
    this.allocation = opts.allocation;
  }

  isAllocated(block: number): boolean {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.blockCount) throw new InvalidArgumentError(`disk ${this.name}: block ${block} is outside its ${this.blockCount} blocks`);
    return this.allocation === null || ((this.allocation[block >>> 5]! >>> (block & 31)) & 1) === 1;
  }

  /** How many blocks are allocated. */
  allocatedBlocks(): number {
    if (!this.allocation) return this.blockCount;
    let n = 0;
    for (let b = 0; b < this.blockCount; b++) if (this.isAllocated(b)) n++;
    return n;
  }

  async read(first: number, count: number, into: Buffer): Promise<void> {
    checkRead(this, first, count, into);
    const parts: Promise<void>[] = [];
    const readSpan = (start: number, n: number): void => {
      const at = (start - first) * this.blockSize;
      const len = n * this.blockSize;
      const offset = start * this.blockSize;
      // The last block may be partial: past the export's end reads as zeros.
      const bytes = Math.min(len, this.sizeBytes - offset);
      if (bytes < len) into.fill(0, at + bytes, at + len);
      parts.push(this.client.read(offset, bytes, into, at));
    };
    // Long runs of unallocated blocks are zero-filled here; short ones ride along in the neighbouring read (the
    // server answers holes with a header, not zeros), since many small requests cost more than the holes.
    let span: { start: number; count: number } | null = null;
    for (const run of allocationRuns(this, first, first + count)) {
      if (run.allocated || (span && run.count < SKIP_HOLE_BLOCKS)) {
        if (span) span.count += run.count;
        else span = { start: run.start, count: run.count };
        continue;
      }
      if (span) readSpan(span.start, span.count);
      span = null;
      const at = (run.start - first) * this.blockSize;
      into.fill(0, at, at + run.count * this.blockSize);
    }
    if (span) {
      // A trailing hole is not worth reading.
      let end = span.start + span.count;
      while (end > span.start && !this.isAllocated(end - 1)) end--;
      const at = (end - first) * this.blockSize;
      into.fill(0, at, (span.start + span.count - first) * this.blockSize);
      readSpan(span.start, end - span.start);
    }
    await settleAll(parts);
  }
}

export interface Qcow2ViewOptions {
  /** The view's disk name (default: the file's path). */
  name?: string;
  /** Default qcow2. */
  format?: ImageFormat;
  /** Where isAllocated comes from: `qemu-img map` of the file (default) or the export's base:allocation. */
  allocation?: 'map' | 'nbd';
  /** Default `qemu-nbd` on the PATH (or DOPPEL_QEMU_NBD). */
  qemuNbdBinary?: string;
  /** Bound on qemu-nbd coming up (default 10 s). */
  startTimeoutMs?: number;
  logger?: Logger;
}

/** A DiskView over an image file served by a qemu-nbd child; close() ends it. */
export class Qcow2View extends NbdDiskView {
  readonly path: string;
  private readonly onClose: () => Promise<void>;
  private closing: Promise<void> | null = null;

  constructor(client: NbdClient, opts: { name: string; path: string; allocation: Uint32Array | null; onClose: () => Promise<void> }) {
    super(client, opts);
    this.path = opts.path;
    this.onClose = opts.onClose;
  }

  /** Closes the connection and stops qemu-nbd (idempotent). */
  close(): Promise<void> {
    this.closing ??= this.onClose();
    return this.closing;
  }
}

/**
 * A DiskView over a qcow2 image file (with its backing chain) that nothing writes: a frozen base. Serves it with
 * `qemu-nbd --read-only` on a private unix socket. ImageInUseError while a QEMU holds it read-write (before the
 * snapshot that froze it).
 */
export async function openQcow2View(path: string, opts: Qcow2ViewOptions = {}): Promise<Qcow2View> {
  checkImagePath(path);
  const format = opts.format ?? 'qcow2';
  const log = (opts.logger ?? silentLogger()).child({ component: 'qcow2-view', path });
  const extents = opts.allocation === 'nbd' ? null : await imageMap(path, { format });
  const dir = mkdtempSync(join(tmpdir(), 'doppel-nbd-'));
  const socketPath = join(dir, 'nbd.sock');
  const binary = opts.qemuNbdBinary ?? (process.env.DOPPEL_QEMU_NBD || 'qemu-nbd');
  const child = spawn(binary, ['--read-only', '--format', format, '--socket', socketPath, '--shared', '1', '--cache', 'writeback', '--aio', 'threads', '--', path], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => (stderr = (stderr + s).slice(-8192)));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
    child.once('error', (error) => resolve({ code: null, signal: null, error }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 3_000)))]);
    clearTimeout(timer);
    if (!done) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const metaContexts = extents ? [] : ['base:allocation'];
    const client = await connectWhenUp(socketPath, metaContexts, exited, opts.startTimeoutMs ?? 10_000, () => stderr, binary, path);
    try {
      const allocation = extents ? allocationBitmap(extents, client.size) : await readAllocation(client);
      log.debug({ size: client.size }, 'qcow2 view open');
      return new Qcow2View(client, {
        name: opts.name ?? path,
        path,
        allocation,
        onClose: async () => {
          await client.close();
          await stop();
        },
      });
    } catch (err) {
      await client.close();
      throw err;
    }
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Connects once qemu-nbd listens; fails with its stderr when it exits first. */
async function connectWhenUp(
  socketPath: string,
  metaContexts: string[],
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>,
  timeoutMs: number,
  stderr: () => string,
  binary: string,
  path: string,
): Promise<NbdClient> {
  const deadline = Date.now() + timeoutMs;
  let gone: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | null = null;
  void exited.then((e) => (gone = e));
  let last: unknown = null;
  for (;;) {
    if (gone) break;
    try {
      return await NbdClient.connect({ socketPath, metaContexts, timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (err) {
      last = err;
      if (!(err instanceof NotFoundError) && !(err instanceof UnavailableError && !(err instanceof NbdProtocolError))) throw err;
    }
    if (Date.now() > deadline) throw new DeadlineExceededError(`qemu-nbd for ${path} did not listen within ${timeoutMs} ms`, { cause: last });
    await sleep(10);
  }
  const e = gone as { code: number | null; signal: NodeJS.Signals | null; error?: Error };
  const said = stderr().trim();
  if ((e.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new NotFoundError(`${binary} not found (install qemu-utils, or set DOPPEL_QEMU_NBD)`, { cause: e.error });
  if (/lock/i.test(said)) throw new ImageInUseError(`qemu-nbd cannot open ${path}: the image is in use by another process: ${said}`);
  if (/No such file/i.test(said)) throw new NotFoundError(`qemu-nbd cannot open ${path}: ${said}`);
  throw new FailedPreconditionError(`qemu-nbd for ${path} exited (${e.signal ?? `code ${e.code ?? '?'}`})${said ? `: ${said}` : ''}`, { cause: last });
}

// ---- a running QEMU's NBD server ----

/** The NBD server each QEMU connection started: its socket, and the start itself (callers at once share it). */
const nbdServers = new WeakMap<QmpClient, { socketPath: string; started: Promise<void> }>();
let exportCounter = 0;

/**
 * Starts the QEMU's NBD server on a unix socket (once per QEMU connection; later calls with the same path share
 * the first one's start, so two exports opened at once do not both run `nbd-server-start`). A server on another
 * socket, or one some other client started, is a FailedPreconditionError: one QEMU runs one NBD server.
 */
export function ensureNbdServer(qmp: QmpClient, socketPath: string): Promise<void> {
  const known = nbdServers.get(qmp);
  if (known) {
    if (known.socketPath !== socketPath) return Promise.reject(new FailedPreconditionError(`this QEMU's NBD server already listens on ${known.socketPath}, not ${socketPath}`));
    return known.started;
  }
  try {
    checkImagePath(socketPath, 'NBD socket path');
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
  const entry = {
    socketPath,
    started: (async () => {
      try {
        await qmp.execute('nbd-server-start', { addr: { type: 'unix', data: { path: socketPath } } });
      } catch (err) {
        if (err instanceof QmpError && /already running/i.test(err.desc)) {
          throw new FailedPreconditionError(`QEMU at ${qmp.socketPath} already runs an NBD server that was not started here: ${err.desc}`, { cause: err });
        }
        throw err;
      }
    })(),
  };
  nbdServers.set(qmp, entry);
  // A failed start is forgotten, so the next caller tries again.
  entry.started.catch(() => {
    if (nbdServers.get(qmp) === entry) nbdServers.delete(qmp);
  });
  return entry.started;
}

/** Stops the QEMU's NBD server (its exports go with it). Idempotent. */
export async function stopNbdServer(qmp: QmpClient): Promise<void> {
  const known = nbdServers.get(qmp);
  if (!known) return;
  nbdServers.delete(qmp);
  if (!(await known.started.then(() => true, () => false))) return;
  try {
    await qmp.execute('nbd-server-stop');
  } catch (err) {
    if (!(err instanceof QmpError && /not running/i.test(err.desc))) throw err;
  }
}

/** A node exported by the QEMU's NBD server. */
export interface QemuExport {
  id: string;
  /** The NBD export name. */
  name: string;
  socketPath: string;
  node: string;
  /** Removes the export (dropping any client still connected) and waits until QEMU has let go of the node. */
  close(): Promise<void>;
}

export interface ExportNodeOptions {
  node: string;
  /** The NBD server's socket (started here if need be). */
  socketPath: string;
  /** Dirty bitmaps of the node to offer as `qemu:dirty-bitmap:NAME`; each must be disabled, or the node read-only. */
  bitmaps?: string[];
  writable?: boolean;
}

/** Exports a block node over the QEMU's NBD server. */
export async function exportNode(qmp: QmpClient, opts: ExportNodeOptions): Promise<QemuExport> {
  await ensureNbdServer(qmp, opts.socketPath);
  const id = `doppel-export-${process.pid}-${++exportCounter}`;
  const args: Record<string, unknown> = { type: 'nbd', id, 'node-name': opts.node, name: id, writable: opts.writable === true };
  if (opts.bitmaps && opts.bitmaps.length > 0) args.bitmaps = opts.bitmaps;
  try {
    await qmp.execute('block-export-add', args);
  } catch (err) {
    if (err instanceof QmpError && /not found|cannot find/i.test(err.desc)) throw new NotFoundError(`exporting node ${opts.node}: ${err.desc}`, { cause: err });
    throw err;
  }
  let closed: Promise<void> | null = null;
  return {
    id,
    name: id,
    socketPath: opts.socketPath,
    node: opts.node,
    close: () => (closed ??= unexport(qmp, id)),
  };
}

async function unexport(qmp: QmpClient, id: string): Promise<void> {
  if (!qmp.isOpen) return;
  const seq = qmp.lastEventSeq;
  try {
    await qmp.execute('block-export-del', { id, mode: 'hard' });
  } catch (err) {
    if (err instanceof QmpError && /not found/i.test(err.desc)) return;
    throw err;
  }
  // Removal finishes asynchronously; until BLOCK_EXPORT_DELETED the node (and its bitmaps) stay busy.
  await qmp.waitForEvent('BLOCK_EXPORT_DELETED', { afterSeq: seq, predicate: (e) => e.data.id === id, timeoutMs: 10_000 });
}

/** A DiskView over a node of a running QEMU, exported read-only; close() removes the export. */
export class QemuExportView extends NbdDiskView {
  readonly node: string;
  private readonly onClose: () => Promise<void>;
  private closing: Promise<void> | null = null;

  constructor(client: NbdClient, opts: { name: string; node: string; allocation: Uint32Array | null; onClose: () => Promise<void> }) {
    super(client, opts);
    this.node = opts.node;
    this.onClose = opts.onClose;
  }

  close(): Promise<void> {
    this.closing ??= this.onClose();
    return this.closing;
  }
}

/**
 * A DiskView over block node `node` of a running QEMU (a frozen base: a snapshot's backing node), through the
 * QEMU's own NBD server; isAllocated comes from the export's base:allocation.
 */
export async function openQemuExportView(qmp: QmpClient, opts: { node: string; socketPath: string; name?: string; logger?: Logger }): Promise<QemuExportView> {
  const exp = await exportNode(qmp, { node: opts.node, socketPath: opts.socketPath });
  try {
    const client = await NbdClient.connect({ socketPath: exp.socketPath, exportName: exp.name, metaContexts: ['base:allocation'], ...(opts.logger ? { logger: opts.logger } : {}) });
    try {
      const allocation = await readAllocation(client);
      return new QemuExportView(client, {
        name: opts.name ?? opts.node,
        node: opts.node,
        allocation,
        onClose: async () => {
          await client.close();
          await exp.close();
        },
      });
    } catch (err) {
      await client.close();
      throw err;
    }
  } catch (err) {
    await exp.close();
    throw err;
  }
}

// ---- the alternative: a raw copy ----

/**
 * A DiskView over a raw copy of the image made with `qemu-img convert` into a sparse temp file (`dir`), read with
 * plain file reads. It costs a full pass and host disk space for the data before the first read, so doppel reads
 * through NBD; it is here to measure against (and for hosts without qemu-nbd).
 */
export async function openRawCopyView(path: string, dir: string, opts: { name?: string; format?: ImageFormat } = {}): Promise<DiskView & { close(): Promise<void> }> {
  checkImagePath(path);
  checkImagePath(dir, 'temp directory');
  const format = opts.format ?? 'qcow2';
  const [info] = await imageInfo(path, { format });
  const extents = await imageMap(path, { format });
  const tmp = mkdtempSync(join(dir, 'doppel-raw-'));
  const raw = join(tmp, 'disk.raw');
  try {
    await convertImage(path, raw, { sourceFormat: format, targetFormat: 'raw' });
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  const fh = await open(raw, 'r');
  const sizeBytes = info!.virtualSize;
  const allocation = allocationBitmap(extents, sizeBytes);
  const view: DiskView & { close(): Promise<void> } = {
    name: opts.name ?? path,
    sizeBytes,
    blockSize: DISK_BLOCK_SIZE,
    blockCount: Math.ceil(sizeBytes / DISK_BLOCK_SIZE),
    isAllocated(block: number): boolean {
      return ((allocation[block >>> 5] ?? 0) >>> (block & 31) & 1) === 1;
    },
    async read(first: number, count: number, into: Buffer): Promise<void> {
      checkRead(view, first, count, into);
      const len = count * DISK_BLOCK_SIZE;
      let done = 0;
      while (done < len) {
        const { bytesRead } = await fh.read(into, done, len - done, first * DISK_BLOCK_SIZE + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      if (done < len) into.fill(0, done, len);
    },
    async close(): Promise<void> {
      await fh.close().catch(() => undefined);
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  return view;
}
