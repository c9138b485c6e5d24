/**
 * One VM of the qemu driver: a QEMU process (started here, or adopted: one a previous agent or somebody else
 * started) driven over QMP, with its record (vm-record.ts) and its disks as qcow2 images.
 *
 * The run state follows QMP: `query-status` when the connection starts, then STOP and RESUME events. If QEMU
 * exits under the VM, the VM is suspended with no QEMU; the next operation that needs one starts a new QEMU
 * (paused) on the disks, as after a host reboot (memory is lost). An adopted QEMU is never restarted.
 *
 * Disk snapshots are external qcow2 snapshots: every disk gets an overlay in one QMP `transaction` (inside a
 * pause of the vCPUs), together with the checkpoint's dirty bitmaps (dirty-bitmap.ts); the frozen bases are
 * read through the QEMU's own NBD server; release ends the checkpoint and folds the overlays back with an active
 * block-commit that carries the tracking bitmaps. One snapshot is open at a time.
 *
 * A shareable snapshot (linked clones on a shared datastore) is never folded: its frozen images become read-only
 * shared bases under the overlays, which become the disks' own images. Simple rule: a shared base is never taken
 * back (settleDisks folds nothing) and never deleted by a VM's destroy, so no linked clone anywhere loses its base;
 * it stays on the datastore until an operator removes it.
 *
 * Targets (QemuDriver.create with `incoming` or `restore`): each disk is a blank image over a blank staged base
 * `<disk>.base.qcow2` that QEMU opens it without (`backing: null`). writeDiskBlocks fills the staged base through a
 * writable NBD export of a separate node (the disk's own node cannot be written: its device unshares writes), and
 * the next operation that needs the disk (a snapshot, run, markComplete, liveDiskView) finishes the fill: the base
 * is attached as the disk's backing (blockdev-reopen) and named in its header. An incoming clone's change tracking
 * starts then too; linkDisks swaps the blank staged base for a shared frozen chain. Changes QEMU's bitmaps do not
 * see (the fill's blocks, inheritChanges) live in the VM's record and join the next checkpoint's changes.
 */
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  type Logger,
  type VmInfo,
  type VmRunState,
  type VmSpec,
} from '../../../../shared/src/mod.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';
import type {
  BlockChanges,
  BypassVolumeInfo,
  DiskInfo,
  DiskSnapshot,
  DiskView,
  DriverVm,
  GuestPages,
  HotFreeze,
  LayerUsage,
  MachineStateBlob,
  SnapshotOptions,
  SnapshotOutcome,
  StorageSnapshotMade,
  VmUsageCounters,
} from '../driver.js';
import { activeNode, attachBacking, commitOverlay, deleteNode, queryChain } from './block-snapshot.js';
import { buildQemuArgs } from './command-line.js';
import {
  carryBitmapsOnCommit,
  cbtBitmapName,
  cbtSince,
  endCheckpoint,
  listDirtyBitmaps,
  prepareSnapshotWithCheckpoint,
  readCheckpointChanges,
  startChangeTracking,
  trackingState,
  type CheckpointSnapshot,
  type DiskSetMember,
  type DiskSetSnapshot,
  type PreparedDiskSetSnapshot,
} from './dirty-bitmap.js';
import { NbdClient } from './nbd-client.js';
import { bitmapWords, checkImagePath, imageInfo, runQemuImg, type ImageFormat } from './qcow2.js';
import { exportNode, openQemuExportView, type QemuExport, type QemuExportView } from './qcow2-view.js';
import { QemuProcess } from './qemu-process.js';
import { QmpError, type QmpClient } from './qmp.js';
import { writeQemuVmRecord, type ExtraChanges, type QemuBoot, type QemuDiskRecord, type QemuVmRecord } from './vm-record.js';

/** How long `cont` is retried while QEMU says "Migration is not finalized yet". */
const CONT_RETRY_MS = 10_000;
/** Bound on a STOP or RESUME event after `stop` or `cont`. */
const RUN_STATE_EVENT_MS = 10_000;
/** Bound on QEMU quitting before it is killed. */
export const QUIT_TIMEOUT_MS = 10_000;
const STATS_INTERVAL_MS = 1_000;
const MiB = 1024 * 1024;
/** NBD writes of a disk fill in flight at once (each holds a copy of its data). */
const FILL_MAX_IN_FLIGHT = 8;
const ZERO_BLOCK = Buffer.alloc(DISK_BLOCK_SIZE);

/** The message of everything the interfaces ask for that the qemu driver does not do yet. */
export function notYet(what: string): FailedPreconditionError {
  return new FailedPreconditionError(`${what} is not supported by the qemu driver yet`);
}

/** For what QEMU does not have at all (guest memory pages, a RAM freeze). */
function notOnQemu(what: string, instead: string): FailedPreconditionError {
  return new FailedPreconditionError(`${what}: not on qemu (${instead})`);
}

/** The process is alive (a zombie is not) and its command line names `qmpSocket`: it is that VM's QEMU. */
export function isQemuOf(pid: number, qmpSocket: string): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(qmpSocket);
  } catch {
    return false;
  }
}

/** Waits until `pid` is no longer that VM's QEMU; false when it still is after `timeoutMs`. */
export async function waitGone(pid: number, qmpSocket: string, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isQemuOf(pid, qmpSocket)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

/** CPU time of a process (user + system), ms; null when it cannot be read. Assumes the usual USER_HZ of 100. */
function processCpuMs(pid: number): number | null {
  if (pid <= 0) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks * 10 : null;
  } catch {
    return null;
  }
}

/** Bytes a file takes on the host (0 when it is gone). */
function allocatedBytes(path: string): number {
  try {
    return statSync(path).blocks * 512;
  } catch {
    return 0;
  }
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

function bitsToBase64(bits: Uint32Array): string {
  return Buffer.from(bits.buffer, bits.byteOffset, bits.byteLength).toString('base64');
}

/** The words of a base64 bitmap, `words` long (short or missing input reads as zeros). */
function bitsFromBase64(b64: string, words: number): Uint32Array {
  const out = new Uint32Array(words);
  const raw = Buffer.from(b64, 'base64');
  for (let w = 0; w < words && (w + 1) * 4 <= raw.length; w++) out[w] = raw.readUInt32LE(w * 4);
  return out;
}

function orInto(into: Uint32Array, bits: Uint32Array): void {
  for (let w = 0; w < into.length && w < bits.length; w++) into[w]! |= bits[w]!;
}

/** One disk of a target being filled: a writable node over its staged base, exported over QEMU's NBD server. */
interface DiskFill {
  node: string;
  exp: QemuExport;
  client: NbdClient;
  /** Writes sent, not yet acknowledged (each settles without rejecting; a failure lands in `error`). */
  inFlight: Set<Promise<void>>;
  error: unknown;
}

/** A liveDiskView's export, opened on the VM's turn queue and closed when the VM runs or the disk is viewed anew. */
interface LiveView {
  disk: number;
  opening: Promise<QemuExportView>;
  closed: boolean;
}

/** liveDiskView(): reads through an NBD export of the disk's active node, opened in the background. */
class LiveDiskView implements DiskView {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  readonly blockCount: number;

  constructor(
    info: DiskInfo,
    private readonly live: LiveView,
    private readonly what: string,
  ) {
    this.name = info.name;
    this.sizeBytes = info.sizeBytes;
    this.blockSize = info.blockSize;
    this.blockCount = info.blockCount;
  }

  /** Every block counts as allocated (the export is opened lazily; holes still read as zeros, cheaply). */
  isAllocated(block: number): boolean {
    if (!Number.isSafeInteger(block) || block < 0 || block >= this.blockCount) throw new InvalidArgumentError(`disk ${this.name}: block ${block} is outside its ${this.blockCount} blocks`);
    return true;
  }

  async read(first: number, count: number, into: Buffer): Promise<void> {
    if (this.live.closed) throw new FailedPreconditionError(`${this.what} was closed: the VM ran, or a newer view or a snapshot of its disks replaced it`);
    const v = await this.live.opening;
    if (this.live.closed) throw new FailedPreconditionError(`${this.what} was closed: the VM ran, or a newer view or a snapshot of its disks replaced it`);
    await v.read(first, count, into);
  }
}

export interface QemuVmInit {
  record: QemuVmRecord;
  /** Where the record lives (`<dataDir>/vms/<id>`). */
  vmDir: string;
  /** The VM's directory on the datastore: its disks (unless adopted) and snapshot overlays. */
  diskDir: string;
  binary?: string;
  log: Logger;
}

/** One disk's part of an open snapshot. */
interface SnapDisk {
  /** The node frozen by the snapshot (the disk's active node before it). */
  frozen: string;
  basePath: string;
  overlayNode: string;
  overlayPath: string;
  /** The checkpoint's bitmaps; null without a checkpoint. */
  cs: CheckpointSnapshot | null;
  folded: boolean;
}

interface OpenSnapshot {
  id: string;
  disks: SnapDisk[];
  views: QemuExportView[];
  /** Shareable: its release keeps the overlays, and the frozen images become shared bases. */
  shareable: boolean;
  released: boolean;
}

/** A snapshot between prepareNow and commitNow (then its open snapshot). */
interface PreparedDisks {
  snapId: string;
  qmp: QmpClient;
  checkpoint: string | undefined;
  shareable: boolean;
  /** The disks' overlays, ready for the transaction; null for a VM without disks. */
  set: PreparedDiskSetSnapshot | null;
  state: 'prepared' | 'committed' | 'cancelled';
  open: OpenSnapshot | null;
  transactionMs: number;
}

/** QemuVm.prepareSnapshot(): a disk snapshot whose overlays exist, waiting for its window. */
export interface PreparedDiskSnapshot {
  readonly id: string;
  /** The transaction only: every disk freezes at once (pause the guest around it for a cut between its writes). */
  commit(): Promise<void>;
  /** After commit: the checkpoint's changes and the views; the DiskSnapshot to release as usual. */
  finish(): Promise<DiskSnapshot>;
  /** Undoes the preparation, or aborts (folds back) a committed snapshot. Idempotent. */
  cancel(): Promise<void>;
}

export class QemuVm implements DriverVm {
  readonly id: string;
  readonly spec: VmSpec;
  readonly cloneOf: string;
  private readonly rec: QemuVmRecord;
  private readonly vmDir: string;
  private readonly diskDir: string;
  private readonly binary: string | undefined;
  private readonly log: Logger;
  private qmp: QmpClient | null = null;
  private proc: QemuProcess | null = null;
  private unlisten: (() => void)[] = [];
  private _state: VmRunState = 'suspended';
  private suspends = 0;
  private open: OpenSnapshot | null = null;
  private pending: PreparedDisks | null = null;
  private ended: 'closed' | 'destroyed' | null = null;
  private statsTimer: NodeJS.Timeout | null = null;
  private counters = { wrOps: 0, rdBytes: 0, wrBytes: 0 };
  /** Run, suspend, snapshots, releases and the end take turns. */
  private turn: Promise<unknown> = Promise.resolve();
  /** Per disk, the open fill of a target (writeDiskBlocks), until it is finished. */
  private fills: (DiskFill | null)[] = [];
  /** Per disk, the blocks the fill wrote (kept in memory until the fill is finished, then in the record). */
  private written: (Uint32Array | null)[] = [];
  /** markComplete() was called; the fill's end and the record's `complete` wait on the turn queue. */
  private completing = false;
  /** Why the fill cannot be finished any more (its QEMU went away mid-fill), or null. */
  private fillBroken: string | null = null;
  private liveViews: LiveView[] = [];

  constructor(init: QemuVmInit) {
    this.rec = init.record;
    this.id = init.record.id;
    this.spec = init.record.spec;
    this.cloneOf = init.record.cloneOf;
    this.vmDir = init.vmDir;
    this.diskDir = init.diskDir;
    this.binary = init.binary;
    this.log = init.log.child({ vm: init.record.id });
  }

  // ---- what the driver and tests see beyond DriverVm ----

  get qmpSocketPath(): string {
    return this.rec.qmpSocket;
  }

  /** The guest's first serial port as a unix socket server ('' for an adopted QEMU). */
  get serialSocketPath(): string {
    return this.rec.serialSocket;
  }

  /** The QEMU's pid (0 when unknown). */
  get pid(): number {
    return this.rec.pid;
  }

  get adopted(): boolean {
    return this.rec.adopted;
  }

  /** How the spec's CPU model became QEMU's. */
  get cpuMapping(): { requested: string; qemu: string; reason: string } {
    return { ...this.rec.cpu };
  }

  get machineType(): string {
    return this.rec.machineType;
  }

  /**
   * Each disk's image file (the VM's own layer, where snapshots fold back), the one the guest writes now, and the
   * images below it that are part of the VM's chain, bottom first (a target's base, staged or attached; a linked
   * clone's shared chain; images a shareable snapshot froze).
   */
  diskFiles(): { name: string; path: string; top: string; format: ImageFormat; bases: string[] }[] {
    return this.rec.disks.map((d) => ({ name: d.name, path: d.path, top: d.top, format: d.format, bases: [...d.bases.map((b) => b.path), ...(d.staged ? [d.staged] : [])] }));
  }

  /** The VM's QMP session while its QEMU runs (QEMU serves one client: use this one, never a second). */
  get qmpClient(): QmpClient | null {
    return this.qmp && this.qmp.isOpen ? this.qmp : null;
  }

  /** The QEMU runs and answers QMP. */
  get connected(): boolean {
    return this.qmp !== null && this.qmp.isOpen;
  }

  // ---- the QEMU process ----

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.turn.then(fn, fn);
    this.turn = p.catch(() => undefined);
    return p;
  }

  private save(): void {
    if (this.ended === 'destroyed') return;
    writeQemuVmRecord(this.vmDir, this.rec);
  }

  private checkUsable(): void {
    if (this.ended === 'destroyed') throw new FailedPreconditionError(`vm ${this.id} was destroyed`);
    if (this.ended === 'closed') throw new FailedPreconditionError(`vm ${this.id}: its driver was closed (a new driver's load() takes it over)`);
  }

  /**
   * Starts a QEMU for the VM, paused (`-S`; with `incoming`, also `-incoming defer`), on each disk's active image.
   * A socket file a dead QEMU left is removed; a live QEMU on the socket is an AlreadyExistsError.
   */
  async launch(opts: { incoming?: boolean } = {}): Promise<void> {
    const r = this.rec;
    if (r.adopted) throw new FailedPreconditionError(`vm ${this.id} is an adopted QEMU: doppel does not know its command line and cannot start it`);
    // A base attached live was named by its absolute path (see QemuDriver.create); nothing holds the image now, so
    // its header gets the relative name back: the chain stays valid wherever the datastore is mounted.
    for (const d of r.disks) {
      const below = d.bases.at(-1)?.path;
      if (!below || d.staged || !d.owned || d.format !== 'qcow2') continue;
      await runQemuImg(['rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', relative(dirname(d.path), below), d.path], `naming ${below} as the backing of ${d.path}`);
    }
    const args = buildQemuArgs({
      name: r.spec.name,
      memoryMib: r.spec.memoryMib,
      vcpus: r.spec.vcpus,
      cpuModel: r.cpu.qemu,
      ...(r.machineType ? { machineType: r.machineType } : {}),
      // No boot data: QEMU's firmware (SeaBIOS) boots from the first disk.
      ...bootArgs(r.boot),
      // A staged base is attached once the fill is done: until then QEMU opens the disk without it.
      disks: r.disks.map((d) => ({ path: d.top, format: d.top === d.path ? d.format : 'qcow2', ...(d.staged && d.top === d.path ? { noBacking: true } : {}) })),
      nics: r.nics.map((n) => ({ mac: n.mac, netdev: 'none' as const })),
      serialSocket: r.serialSocket,
      serialLog: join(this.vmDir, 'serial.log'),
      ...(r.spec.identity?.uuid ? { uuid: r.spec.identity.uuid.toLowerCase() } : {}),
      qmpSocket: r.qmpSocket,
      pidFile: r.pidFile,
      accel: r.accel,
      paused: true,
      ...(opts.incoming ? { incoming: 'defer' as const } : {}),
    });
    const proc = await QemuProcess.start({
      args,
      qmpSocketPath: r.qmpSocket,
      detached: true,
      stderrPath: join(this.vmDir, 'qemu.log'),
      startTimeoutMs: 30_000,
      logger: this.log,
      ...(this.binary ? { binary: this.binary } : {}),
    });
    this.proc = proc;
    r.pid = proc.pid;
    this.save();
    try {
      await this.attach(proc.qmp, { own: true });
      if (r.networkIsolated) await this.cutLinks(proc.qmp);
    } catch (err) {
      await proc.quit(2_000).catch(() => undefined);
      throw err;
    }
    this.log.info({ pid: proc.pid, accel: r.accel, cpu: r.cpu.qemu }, 'QEMU started (paused)');
  }

  /**
   * Takes a QMP connection as the VM's: the run state from query-status, then from events. `own`: a QEMU doppel
   * started, whose NBD server (if a previous agent started one) is doppel's to restart.
   */
  async attach(qmp: QmpClient, opts: { own: boolean }): Promise<void> {
    this.qmp = qmp;
    const offEvent = qmp.on('event', (e) => {
      if (this.qmp !== qmp) return;
      if (e.event === 'STOP') this._state = 'suspended';
      else if (e.event === 'RESUME') this._state = 'running';
    });
    const offClose = qmp.on('close', (reason) => {
      if (this.qmp !== qmp) return;
      this.qmp = null;
      this.proc = null;
      this._state = 'suspended';
      this.stopStats();
      const filling = this.fills.flatMap((f, i) => (f ? [this.rec.disks[i]?.name ?? String(i)] : []));
      if (filling.length > 0) this.fillBroken = `vm ${this.id}: its QEMU exited while disk(s) ${filling.join(', ')} were being filled; the blocks written are lost`;
      this.fills = [];
      for (const lv of this.liveViews) lv.closed = true;
      this.liveViews = [];
      if (!this.ended) this.log.warn({ reason: reason.message }, 'QEMU is gone; the VM is suspended (a new QEMU starts from its disks when it is next needed)');
    });
    this.unlisten = [offEvent, offClose];
    const st = await qmp.queryStatus();
    this._state = st.running ? 'running' : 'suspended';
    if (opts.own) {
      // A previous agent's NBD server: its exports are stale, and ensureNbdServer only knows servers it started.
      await qmp.execute('nbd-server-stop').catch(() => undefined);
    }
    this.startStats();
  }

  /** After an (re)attach or a restart: folds overlays a crash left (see foldLeftovers). */
  async recover(): Promise<void> {
    const qmp = this.qmp;
    if (!qmp) return;
    await this.foldLeftovers(qmp);
  }

  /** Pins the machine type QEMU resolved `q35` to, so a later restart (or a migration target) gets the same machine. */
  async pinMachineType(): Promise<void> {
    const qmp = this.qmp;
    if (!qmp || this.rec.machineType || this.rec.adopted) return;
    const list = await qmp.execute<unknown>('query-machines');
    const m = Array.isArray(list) ? list.filter(isObj).find((x) => x.alias === 'q35' && typeof x.name === 'string') : undefined;
    if (m && typeof m.name === 'string') {
      this.rec.machineType = m.name;
      this.save();
    }
  }

  /** Starts change tracking on every disk: changes since '' (the disk's creation). */
  async startTracking(): Promise<void> {
    const qmp = await this.conn();
    for (const d of this.rec.disks) await startChangeTracking(qmp, await activeNode(qmp, d.device), '');
  }

  /** The QMP connection, starting a QEMU (paused) on the disks when the last one is gone. */
  private async conn(): Promise<QmpClient> {
    this.checkUsable();
    if (this.qmp && this.qmp.isOpen) return this.qmp;
    if (this.rec.adopted) throw new FailedPreconditionError(`vm ${this.id}: the adopted QEMU at ${this.rec.qmpSocket} is gone, and doppel cannot start it again`);
    if (!this.rec.complete && this.rec.target === 'incoming') throw new UnavailableError(`vm ${this.id}: the QEMU of this incoming clone is gone with its migrated memory; it cannot be restarted`);
    if (this.fillBroken) throw new UnavailableError(this.fillBroken);
    this.log.info('starting a new QEMU on the disks (memory is lost)');
    await this.launch();
    await this.recover();
    return this.qmp as unknown as QmpClient;
  }

  private detach(): void {
    for (const off of this.unlisten) off();
    this.unlisten = [];
    this.stopStats();
  }

  private startStats(): void {
    this.stopStats();
    this.statsTimer = setInterval(() => void this.refreshStats(), STATS_INTERVAL_MS);
    this.statsTimer.unref();
    void this.refreshStats();
  }

  private stopStats(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.statsTimer = null;
  }

  /** Sums query-blockstats over the guest's disk devices (the counters usage() and diskWrites() report). */
  private async refreshStats(): Promise<void> {
    const qmp = this.qmp;
    if (!qmp || !qmp.isOpen) return;
    try {
      const r = await qmp.execute<unknown>('query-blockstats', undefined, { timeoutMs: 5_000 });
      if (!Array.isArray(r)) return;
      const c = { wrOps: 0, rdBytes: 0, wrBytes: 0 };
      for (const e of r.filter(isObj)) {
        if (typeof e.qdev !== 'string' || !e.qdev || !isObj(e.stats)) continue;
        c.wrOps += num(e.stats.wr_operations);
        c.rdBytes += num(e.stats.rd_bytes);
        c.wrBytes += num(e.stats.wr_bytes);
      }
      this.counters = c;
    } catch {
      // QEMU busy or gone: the last counters stand.
    }
  }

  private async cutLinks(qmp: QmpClient): Promise<void> {
    for (const n of this.rec.nics) if (n.id) await qmp.execute('set_link', { name: n.id, up: false });
  }

  /** `cont`, retrying while QEMU says the migration is not finalized (after `pre-switchover`), then RESUME. */
  private async contNow(qmp: QmpClient): Promise<void> {
    const deadline = Date.now() + CONT_RETRY_MS;
    let delay = 10;
    for (;;) {
      const seq = qmp.lastEventSeq;
      try {
        await qmp.execute('cont');
      } catch (err) {
        if (err instanceof QmpError && /Migration is not finalized yet/i.test(err.desc) && Date.now() < deadline) {
          await sleep(delay);
          delay = Math.min(delay * 2, 500);
          continue;
        }
        throw err;
      }
      await qmp.waitForEvent('RESUME', { afterSeq: seq, timeoutMs: RUN_STATE_EVENT_MS });
      this._state = 'running';
      return;
    }
  }

  /** `stop` and wait for STOP; false when the vCPUs were not running. */
  private async stopNow(qmp: QmpClient): Promise<boolean> {
    const st = await qmp.queryStatus();
    if (!st.running) {
      this._state = 'suspended';
      return false;
    }
    const seq = qmp.lastEventSeq;
    await qmp.execute('stop');
    await qmp.waitForEvent('STOP', { afterSeq: seq, timeoutMs: RUN_STATE_EVENT_MS });
    this._state = 'suspended';
    this.suspends++;
    return true;
  }

  // ---- DriverVm: run state ----

  get state(): VmRunState {
    return this._state;
  }

  get networkIsolated(): boolean {
    return this.rec.networkIsolated;
  }

  get suspendCount(): number {
    return this.suspends;
  }

  run(opts: { isolateNetwork?: boolean } = {}): Promise<void> {
    return this.exclusive(async () => {
      const qmp = await this.conn();
      await this.finishStaged(qmp);
      await this.closeLiveViews();
      if (opts.isolateNetwork && !this.rec.networkIsolated) {
        await this.cutLinks(qmp);
        this.rec.networkIsolated = true;
        this.save();
      }
      const st = await qmp.queryStatus();
      if (st.running) this._state = 'running';
      else await this.contNow(qmp);
      if (!this.rec.complete) {
        this.rec.complete = true;
        this.save();
      }
    });
  }

  suspend(): Promise<void> {
    return this.exclusive(async () => {
      this.checkUsable();
      const qmp = this.qmp;
      if (!qmp || !qmp.isOpen) {
        this._state = 'suspended';
        return;
      }
      await this.stopNow(qmp);
    });
  }

  /**
   * Declares the VM whole. A target whose disks were being filled first finishes the fill (on the turn queue: calls
   * made after this one wait for it); `complete` is recorded once the disks are whole. If that fails, the VM stays
   * incomplete (logged; the next run or snapshot tries again and throws).
   */
  markComplete(): void {
    if (this.rec.complete || this.completing || this.ended) return;
    if (!this.needsFinish()) {
      this.rec.complete = true;
      this.save();
      return;
    }
    this.completing = true;
    void this.exclusive(async () => {
      await this.finishStaged(await this.conn());
      this.rec.complete = true;
      this.save();
    })
      .catch((err: unknown) => this.log.error({ err }, 'the disks of a VM marked complete could not be finished: it stays incomplete'))
      .finally(() => {
        this.completing = false;
      });
  }

  /** A clean stop of the agent: an open snapshot is aborted (folded back), then QMP is let go; QEMU runs on. */
  close(): Promise<void> {
    return this.exclusive(async () => {
      if (this.ended) return;
      await this.dropFills();
      await this.closeLiveViews();
      if (this.pending) await this.cancelPrepared(this.pending);
      const s = this.open;
      if (s) {
        try {
          await this.releaseNow(s, 'abort');
        } catch (err) {
          this.log.warn({ err }, 'the open disk snapshot could not be folded back; the next load folds it (change tracking is lost)');
        }
      }
      this.ended = 'closed';
      this.detach();
      const qmp = this.qmp;
      this.qmp = null;
      this.proc = null;
      await qmp?.close();
    });
  }

  /** Quits the QEMU (SIGKILL after QUIT_TIMEOUT_MS); the driver then deletes the files. */
  destroy(): Promise<void> {
    return this.exclusive(async () => {
      if (this.ended === 'destroyed') return;
      await this.dropFills();
      await this.closeLiveViews();
      this.ended = 'destroyed';
      const s = this.open;
      this.open = null;
      this.pending = null;
      if (s) for (const v of s.views) await v.close().catch(() => undefined);
      this.detach();
      const qmp = this.qmp;
      const proc = this.proc;
      this.qmp = null;
      this.proc = null;
      if (proc) {
        await proc.quit(QUIT_TIMEOUT_MS);
        return;
      }
      if (qmp && qmp.isOpen) {
        await qmp.execute('quit', undefined, { timeoutMs: QUIT_TIMEOUT_MS }).catch(() => undefined);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([qmp.closed, new Promise((resolve) => (timer = setTimeout(resolve, QUIT_TIMEOUT_MS)))]);
        clearTimeout(timer);
        await qmp.close();
      }
      const { pid, qmpSocket } = this.rec;
      if (!(await waitGone(pid, qmpSocket, QUIT_TIMEOUT_MS))) {
        this.log.warn({ pid }, 'QEMU did not quit in time; SIGKILL');
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone meanwhile.
        }
        await waitGone(pid, qmpSocket, 5_000);
      }
    });
  }

  // ---- DriverVm: memory (QEMU keeps it; the migration stream carries it) ----

  async memoryHash(): Promise<string> {
    throw notOnQemu('memoryHash', "use the guest's own memory check");
  }

  /** QEMU's dirty-rate estimate (`calc-dirty-rate`, page sampling) over the window, in 4 KiB pages per second. */
  async measureDirtyRate(windowMs: number): Promise<number> {
    if (!Number.isFinite(windowMs) || windowMs <= 0) throw new InvalidArgumentError(`a dirty-rate window must be a positive number of ms (got ${windowMs})`);
    const qmp = await this.exclusive(() => this.conn());
    const ms = Math.min(60_000, Math.max(100, Math.round(windowMs)));
    await qmp.execute('calc-dirty-rate', { 'calc-time': ms, 'calc-time-unit': 'millisecond', mode: 'page-sampling' });
    const deadline = Date.now() + ms + 10_000;
    await sleep(ms);
    for (;;) {
      const r = await qmp.execute<unknown>('query-dirty-rate', { 'calc-time-unit': 'millisecond' });
      if (isObj(r) && r.status === 'measured') return (num(r['dirty-rate']) * MiB) / 4096;
      if (Date.now() > deadline) throw new DeadlineExceededError(`vm ${this.id}: QEMU measured no dirty rate within ${ms + 10_000} ms`);
      await sleep(20);
    }
  }

  pages(): GuestPages {
    throw notOnQemu('GuestPages', "QEMU's own migration moves guest memory; doppel does not read it page by page");
  }

  saveState(): MachineStateBlob {
    throw notOnQemu('saveState', "vCPU and device state travel in QEMU's migration stream");
  }

  loadState(_state: MachineStateBlob): void {
    throw notOnQemu('loadState', "vCPU and device state travel in QEMU's migration stream");
  }

  /** Guest memory writes are not visible to QEMU's host side: 0. */
  guestWrites(): number {
    return 0;
  }

  /** Write requests the guest made to its disks (query-blockstats, refreshed every second). */
  diskWrites(): number {
    return this.counters.wrOps;
  }

  usage(): VmUsageCounters {
    const pid = this.connected && isQemuOf(this.rec.pid, this.rec.qmpSocket) ? this.rec.pid : 0;
    return { cpuMs: processCpuMs(pid), diskReadBytes: this.counters.rdBytes, diskWriteBytes: this.counters.wrBytes, netRxBytes: 0, netTxBytes: 0 };
  }

  hotFreeze(): Promise<HotFreeze> {
    return Promise.reject(notOnQemu('hot freeze', 'QEMU cannot freeze RAM while the vCPUs run; clone with a live migration'));
  }

  bypassVolumes(): BypassVolumeInfo[] {
    return [];
  }

  async flushBypass(): Promise<void> {
    // No bypass volumes on qemu.
  }

  // ---- DriverVm: disks ----

  disks(): DiskInfo[] {
    return this.spec.disks.map((d) => {
      const sizeBytes = d.sizeMib * MiB;
      return { name: d.name, sizeBytes, blockSize: DISK_BLOCK_SIZE, blockCount: Math.ceil(sizeBytes / DISK_BLOCK_SIZE) };
    });
  }

  /** A disk's image files, bottom first: its base (a clone's or restore's, or a linked clone's shared one), its own image, an open snapshot's overlay. */
  private diskFilesOf(d: QemuDiskRecord): string[] {
    return [...d.bases.map((b) => b.path), ...(d.staged ? [d.staged] : []), d.path, ...(d.top !== d.path ? [d.top] : [])];
  }

  /** Each disk's image files, datastore-relative where they are in the datastore (absolute otherwise), bottom first. */
  diskChains(): string[][] {
    const root = join(this.diskDir, '..', '..');
    const rel = (p: string): string => (p.startsWith(root + sep) ? p.slice(root.length + 1) : p);
    return this.rec.disks.map((d) => this.diskFilesOf(d).map(rel));
  }

  /**
   * The disks' image files (bytes allocated on the host): the VM's own, and a linked clone's shared base (shared);
   * an image base below a disk made from a spec's `image` is not listed.
   */
  storageUsage(): LayerUsage[] {
    const chains = this.diskChains();
    return this.rec.disks.flatMap((d, i) =>
      this.diskFilesOf(d).map((f, j) => {
        const shared = d.bases.some((b) => b.path === f && b.shared) || (f === d.staged && d.stagedLinked);
        return { disk: i, id: chains[i]?.[j] ?? f, bytes: allocatedBytes(f), shared };
      }),
    );
  }

  snapshotDisks(opts: SnapshotOptions = {}): Promise<DiskSnapshot> {
    return this.exclusive(async () => {
      const p = await this.prepareNow(opts);
      await this.commitNow(p, true);
      return this.finishNow(p);
    });
  }

  /**
   * The first half of snapshotDisks, done ahead of a paused window (a live clone's switchover): each disk's overlay
   * is created and added to QEMU, unattached, and stale bitmaps are dropped. `commit()` then runs only the
   * transaction (the guest is not paused or resumed: pause it first for a consistent cut, or let QEMU's own
   * pause hold it); `finish()` reads the checkpoint's changes and opens the views (outside the window);
   * `cancel()` undoes whatever was done (a committed snapshot folds back). One snapshot, prepared or open, at a
   * time.
   */
  prepareSnapshot(opts: SnapshotOptions = {}): Promise<PreparedDiskSnapshot> {
    return this.exclusive(async () => {
      const p = await this.prepareNow(opts);
      let finishing: Promise<DiskSnapshot> | null = null;
      return {
        id: p.snapId,
        commit: () => this.exclusive(() => this.commitNow(p, false)),
        finish: () => (finishing ??= this.exclusive(() => this.finishNow(p))),
        cancel: () => this.exclusive(() => this.cancelNow(p)),
      };
    });
  }

  private async prepareNow(opts: SnapshotOptions): Promise<PreparedDisks> {
    const shareable = opts.shareable === true;
    if (shareable && this.rec.disks.some((d) => !d.owned || d.format !== 'qcow2')) {
      throw new FailedPreconditionError(`vm ${this.id}: a shareable snapshot needs every disk as a qcow2 image in the datastore (an adopted QEMU's own disks are not)`);
    }
    const checkpoint = opts.checkpoint;
    if (checkpoint !== undefined) {
      if (checkpoint === '') throw new InvalidArgumentError('a checkpoint id must not be empty');
      cbtBitmapName(checkpoint);
    }
    const qmp = await this.conn();
    await this.finishStaged(qmp);
    await this.closeLiveViews();
    if (this.open) throw new FailedPreconditionError(`vm ${this.id} has an open disk snapshot (${this.open.id}): the qemu driver keeps one at a time`);
    if (this.pending) throw new FailedPreconditionError(`vm ${this.id} has a prepared disk snapshot (${this.pending.snapId}): the qemu driver keeps one at a time`);
    const seq = ++this.rec.snapSeq;
    this.save();
    const snapId = `${this.id}-s${seq}`;
    const n = this.rec.disks.length;
    const overlayNode = (i: number): string => `doppel-d${i}-s${seq}`;
    const overlayPath = (i: number): string => join(this.diskDir, `${this.rec.disks[i]!.name}.s${seq}.qcow2`);
    const p: PreparedDisks = { snapId, qmp, checkpoint, shareable, set: null, state: 'prepared', open: null, transactionMs: 0 };
    if (n === 0) return p;
    const disks: DiskSetMember[] = [];
    for (const [i, d] of this.rec.disks.entries()) disks.push({ node: await activeNode(qmp, d.device), overlayPath: overlayPath(i), overlayNode: overlayNode(i) });
    p.set = await prepareSnapshotWithCheckpoint(qmp, { disks, ...(checkpoint !== undefined ? { checkpoint } : {}), logger: this.log });
    this.pending = p;
    return p;
  }

  private async cancelPrepared(p: PreparedDisks): Promise<void> {
    await p.set?.cancel().catch((e: unknown) => this.log.warn({ err: e }, 'could not undo a prepared snapshot'));
    p.state = 'cancelled';
    if (this.pending === p) this.pending = null;
  }

  /** The frozen moment: one transaction snapshots every disk and starts the overlays' bitmaps. */
  private async commitNow(p: PreparedDisks, pause: boolean): Promise<void> {
    if (p.state === 'committed') return;
    if (p.state !== 'prepared') throw new FailedPreconditionError(`the disk snapshot ${p.snapId} of vm ${this.id} was ${p.state}`);
    const set = p.set;
    if (!set) {
      p.state = 'committed';
      if (this.pending === p) this.pending = null;
      return;
    }
    const qmp = p.qmp;
    let wasRunning = false;
    let r: DiskSetSnapshot;
    try {
      if (pause) wasRunning = await this.stopNow(qmp);
      r = await set.commit();
    } catch (err) {
      // The transaction is all or nothing: no overlay is in use; the prepared ones went with it.
      await this.cancelPrepared(p);
      if (wasRunning) await this.contNow(qmp).catch((e: unknown) => this.log.warn({ err: e }, 'could not resume the guest after a failed snapshot'));
      throw err;
    }
    if (wasRunning) await this.contNow(qmp);
    p.state = 'committed';
    p.transactionMs = r.transactionMs;
    if (this.pending === p) this.pending = null;

    const checkpoint = p.checkpoint;
    // A shareable snapshot is never folded back (linked clones may overlay its frozen images from now on): the
    // frozen images stay below the overlays as read-only shared bases, never deleted by this VM, and the overlays
    // become the disks' own images.
    const disks: SnapDisk[] = r.snapshots.map((x, i) => ({ frozen: x.node, basePath: x.basePath, overlayNode: x.overlayNode, overlayPath: x.overlayPath, cs: r.checkpoints[i] ?? null, folded: p.shareable }));
    this.rec.disks.forEach((d, i) => {
      const overlay = disks[i]!.overlayPath;
      if (p.shareable) {
        d.bases.push({ path: d.path, shared: true });
        d.path = overlay;
      }
      d.top = overlay;
    });
    this.save();
    p.open = { id: p.snapId, disks, views: [], shareable: p.shareable, released: false };
    this.open = p.open;
    this.log.debug({ snap: p.snapId, checkpoint, transactionMs: p.transactionMs }, 'disks snapshotted');
  }

  /** After the window: the checkpoint's changes and the views over the frozen bases. */
  private async finishNow(p: PreparedDisks): Promise<DiskSnapshot> {
    if (p.state !== 'committed') throw new FailedPreconditionError(`the disk snapshot ${p.snapId} of vm ${this.id} is ${p.state}, not committed`);
    const open = p.open;
    if (!open) return { id: p.snapId, disks: [], changes: [], chains: [], release: async () => undefined };
    if (open.released) throw new FailedPreconditionError(`the disk snapshot ${p.snapId} of vm ${this.id} was released`);
    const qmp = await this.conn();
    const nbd = this.rec.nbdSocket;
    let changes: (BlockChanges | null)[];
    try {
      changes = [];
      if (p.checkpoint !== undefined) {
        for (const [i, d] of open.disks.entries()) changes.push(this.withExtraChanges(i, d.cs ? await readCheckpointChanges(qmp, d.cs, nbd) : null));
      }
      for (const [i, d] of open.disks.entries()) {
        open.views.push(await openQemuExportView(qmp, { node: d.frozen, socketPath: nbd, name: this.rec.disks[i]!.name, logger: this.log }));
      }
    } catch (err) {
      await this.releaseNow(open, 'abort').catch((e: unknown) => this.log.warn({ err: e }, 'could not fold back a snapshot whose views failed'));
      throw err;
    }

    void this.refreshStats();
    let releasing: Promise<void> | null = null;
    const views: DiskView[] = [...open.views];
    // A shareable snapshot's frozen chains (without the overlays the VM writes now), datastore-relative.
    const chains = open.shareable ? this.diskChains().map((c) => c.slice(0, -1)) : [];
    return {
      id: p.snapId,
      disks: views,
      changes,
      chains,
      release: (outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void> => {
        releasing ??= this.exclusive(() => this.releaseNow(open, outcome, alsoChanged)).catch((err: unknown) => {
          releasing = null;
          throw err;
        });
        return releasing;
      },
    };
  }

  /** Undoes a prepared snapshot; a committed one is aborted (its overlays fold back). Idempotent. */
  private async cancelNow(p: PreparedDisks): Promise<void> {
    if (p.state === 'prepared') return this.cancelPrepared(p);
    if (p.state === 'committed' && p.open && !p.open.released) await this.releaseNow(p.open, 'abort');
  }

  /**
   * Ends a snapshot: the views close, each checkpoint ends with `outcome`, and each overlay folds back into its
   * frozen base (an active block-commit carrying the tracking bitmaps). With no QEMU (it exited), nothing can be
   * folded now: the disks' records keep the overlays, and the next QEMU folds them (change tracking lost).
   */
  private async releaseNow(s: OpenSnapshot, outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void> {
    if (s.released || this.ended) return;
    for (const v of s.views) await v.close().catch((err: unknown) => this.log.warn({ err }, 'a snapshot view did not close cleanly'));
    const qmp = this.qmp;
    if (!qmp || !qmp.isOpen) {
      s.released = true;
      if (this.open === s) this.open = null;
      return;
    }
    const nbd = this.rec.nbdSocket;
    for (const [i, d] of s.disks.entries()) {
      if (d.cs && !d.cs.ended) {
        await endCheckpoint(qmp, d.cs, outcome, { alsoChanged: alsoChanged?.[i], socketPath: nbd });
        this.settleExtraChanges(i, outcome);
      }
    }
    for (const [i, d] of s.disks.entries()) {
      if (d.folded) continue;
      const r = await commitOverlay(qmp, {
        active: d.overlayNode,
        base: d.frozen,
        jobId: `doppel-commit-${i}`,
        beforeComplete: (l) => carryBitmapsOnCommit(qmp, l),
        logger: this.log,
      });
      this.removeOwnFiles(r.removed.map((x) => x.filename));
      d.folded = true;
      const rd = this.rec.disks[i];
      if (rd) rd.top = d.basePath;
      this.save();
    }
    s.released = true;
    if (this.open === s) this.open = null;
    void this.refreshStats();
  }

  /** Deletes image files the VM made in its datastore directory (never anything else). */
  private removeOwnFiles(paths: string[]): void {
    for (const p of paths) if (p.startsWith(this.diskDir + sep) && existsSync(p)) rmSync(p, { force: true });
  }

  /**
   * Overlays left in a disk's chain by an agent that stopped with a snapshot open: folded back into the disk's own
   * image. Their outcome is unknown, so their tracking bitmaps are dropped first and the carry removes the base's:
   * change tracking is lost (the next backup is full), never wrong.
   */
  private async foldLeftovers(qmp: QmpClient): Promise<void> {
    for (const [i, d] of this.rec.disks.entries()) {
      const active = await activeNode(qmp, d.device);
      const chain = await queryChain(qmp, active);
      const top = chain[0];
      if (!top || top.filename === d.path) {
        if (d.top !== d.path) {
          d.top = d.path;
          this.save();
        }
        continue;
      }
      const base = chain.find((x) => x.filename === d.path);
      if (!base) {
        this.log.warn({ disk: d.name, chain: chain.map((x) => x.filename) }, "the disk's own image is not in its chain; left as it is");
        continue;
      }
      this.log.warn({ disk: d.name, layers: chain.indexOf(base) }, 'folding back overlays an unfinished snapshot left (change tracking is lost)');
      for (const b of top.dirtyBitmaps) if (cbtSince(b.name) !== null) await qmp.execute('block-dirty-bitmap-remove', { node: active, name: b.name });
      const r = await commitOverlay(qmp, { active, base: base.nodeName, jobId: `doppel-fold-${i}`, beforeComplete: (l) => carryBitmapsOnCommit(qmp, l), logger: this.log });
      this.removeOwnFiles(r.removed.map((x) => x.filename));
      d.top = d.path;
      this.save();
    }
  }

  /** No merge runs outside a release, which finishes before it resolves: this waits for the turns before it. */
  settleDisks(): Promise<void> {
    return this.exclusive(async () => undefined);
  }

  // ---- DriverVm: filling a target (a clone after its migration landed, a restore) ----

  private diskRecord(disk: number): QemuDiskRecord {
    const d = Number.isSafeInteger(disk) && disk >= 0 ? this.rec.disks[disk] : undefined;
    if (!d) throw new InvalidArgumentError(`disk ${disk} does not exist (vm ${this.id} has ${this.rec.disks.length})`);
    return d;
  }

  /** The QMP session of a target being filled: its QEMU must not be replaced (the target's memory and fill would be lost). */
  private liveQmp(): QmpClient {
    this.checkUsable();
    if (this.fillBroken) throw new UnavailableError(this.fillBroken);
    const qmp = this.qmp;
    if (!qmp || !qmp.isOpen) throw new UnavailableError(`vm ${this.id}: its QEMU is gone; a target being filled cannot be restarted`);
    return qmp;
  }

  /**
   * Writes whole blocks into disk `disk` of a target (an incoming clone after its migration landed, or a restore)
   * while it is not running and not complete. The disk's device does not share writes on its node, so the blocks go
   * into its staged base `<disk>.base.qcow2` (which its header names, and which QEMU opened the disk without): the
   * first write opens a writable node over it, exported over QEMU's NBD server, and writes go through that export
   * (up to FILL_MAX_IN_FLIGHT at once; a failed one fails the next call, or the fill's end). All-zero blocks cost
   * nothing (the base is blank), unless they overwrite earlier data. The fill ends (flushed, its base attached as the
   * disk's backing) at the next snapshotDisks, run, markComplete or liveDiskView. The blocks written count as changed
   * since the disk's creation, until inheritChanges replaces them.
   */
  writeDiskBlocks(disk: number, first: number, data: Buffer): Promise<void> {
    return this.exclusive(async () => {
      this.checkUsable();
      const d = this.diskRecord(disk);
      const info = this.disks()[disk]!;
      const bs = info.blockSize;
      if (!Number.isSafeInteger(first) || first < 0 || first >= info.blockCount) {
        throw new InvalidArgumentError(`disk '${d.name}' of vm ${this.id}: block ${first} is outside its ${info.blockCount} blocks`);
      }
      const offset = first * bs;
      if (!Buffer.isBuffer(data) || data.length === 0 || offset + data.length > info.sizeBytes || (data.length % bs !== 0 && offset + data.length !== info.sizeBytes)) {
        throw new InvalidArgumentError(
          `disk '${d.name}' of vm ${this.id}: ${data.length} bytes at block ${first} are not whole ${bs}-byte blocks inside its ${info.sizeBytes} bytes`,
        );
      }
      if (this.rec.complete || this.completing) {
        throw new FailedPreconditionError(`vm ${this.id} is complete: writeDiskBlocks fills only an incoming clone or a restore before it is complete`);
      }
      if (!d.staged) {
        throw new FailedPreconditionError(
          d.bases.length > 0 || this.rec.complete
            ? `disk '${d.name}' of vm ${this.id} takes no more blocks: its fill was finished (by a snapshot, run, markComplete or liveDiskView) and its base attached`
            : `vm ${this.id} is not a clone or restore target: writeDiskBlocks fills only those`,
        );
      }
      if (d.stagedLinked) throw new FailedPreconditionError(`disk '${d.name}' of vm ${this.id} overlays a shared base (a linked clone): its blocks are never written`);
      if (this._state === 'running') throw new FailedPreconditionError(`vm ${this.id} is running: its disks take blocks only while it is not`);
      const fill = this.fills[disk] ?? (await this.openFill(disk, d));
      if (fill.error) throw this.fillError(d, fill.error);
      const written = (this.written[disk] ??= new Uint32Array(bitmapWords(info.blockCount)));
      const was = (b: number): boolean => ((written[b >>> 5]! >>> (b & 31)) & 1) === 1;
      const n = Math.ceil(data.length / bs);
      const isZero = (k: number): boolean => {
        const end = Math.min((k + 1) * bs, data.length);
        return ZERO_BLOCK.compare(data, k * bs, end, 0, end - k * bs) === 0;
      };
      let k = 0;
      while (k < n) {
        const zero = isZero(k);
        // A zero block on the blank base changes nothing, unless it overwrites data written before.
        if (zero && !was(first + k)) {
          k++;
          continue;
        }
        let m = 1;
        while (k + m < n && isZero(k + m) === zero && (!zero || was(first + k + m))) m++;
        const start = k * bs;
        const end = Math.min((k + m) * bs, data.length);
        if (zero) {
          await this.queueFillWrite(fill, fill.client.canWriteZeroes ? fill.client.writeZeroes(offset + start, end - start) : fill.client.write(offset + start, Buffer.alloc(end - start)));
        } else {
          // A copy: the caller may reuse its buffer once this resolves, before the server's reply.
          await this.queueFillWrite(fill, fill.client.write(offset + start, Buffer.from(data.subarray(start, end))));
        }
        for (let b = first + k; b < first + k + m; b++) written[b >>> 5]! |= 1 << (b & 31);
        k += m;
      }
    });
  }

  private async queueFillWrite(fill: DiskFill, write: Promise<void>): Promise<void> {
    const tracked: Promise<void> = write.then(
      () => void fill.inFlight.delete(tracked),
      (err: unknown) => {
        fill.inFlight.delete(tracked);
        fill.error ??= err;
      },
    );
    fill.inFlight.add(tracked);
    if (fill.inFlight.size >= FILL_MAX_IN_FLIGHT) await Promise.race(fill.inFlight);
  }

  private fillError(d: QemuDiskRecord, err: unknown): UnavailableError {
    return new UnavailableError(`a write into disk '${d.name}' of vm ${this.id} failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }

  /** The fill of one disk: a writable node over its staged base, exported, with a client connected. */
  private async openFill(disk: number, d: QemuDiskRecord): Promise<DiskFill> {
    const qmp = this.liveQmp();
    const st = await qmp.queryStatus();
    if (st.status === 'inmigrate') throw new FailedPreconditionError(`vm ${this.id}: its incoming migration has not landed yet; its disks take blocks once it has`);
    if (st.running) throw new FailedPreconditionError(`vm ${this.id} is running: its disks take blocks only while it is not`);
    const node = `doppel-fill${disk}`;
    await deleteNode(qmp, node);
    await qmp.execute('blockdev-add', { driver: 'qcow2', 'node-name': node, file: { driver: 'file', filename: d.staged, aio: 'threads' }, discard: 'unmap' });
    let exp: QemuExport | null = null;
    try {
      exp = await exportNode(qmp, { node, socketPath: this.rec.nbdSocket, writable: true });
      const client = await NbdClient.connect({ socketPath: exp.socketPath, exportName: exp.name, logger: this.log });
      const fill: DiskFill = { node, exp, client, inFlight: new Set(), error: null };
      this.fills[disk] = fill;
      this.log.debug({ disk: d.name, base: d.staged }, 'disk fill opened');
      return fill;
    } catch (err) {
      await exp?.close().catch(() => undefined);
      await deleteNode(qmp, node).catch(() => undefined);
      throw err;
    }
  }

  /** Ends one disk's fill: every write acknowledged, flushed, the client, the export and the node gone. */
  private async endFill(qmp: QmpClient, disk: number): Promise<void> {
    const fill = this.fills[disk];
    if (!fill) return;
    const d = this.diskRecord(disk);
    try {
      await Promise.all(fill.inFlight);
      if (fill.error) throw this.fillError(d, fill.error);
      await fill.client.flush();
    } finally {
      this.fills[disk] = null;
      await fill.client.close().catch(() => undefined);
      await fill.exp.close().catch((err: unknown) => this.log.warn({ err, disk: d.name }, 'the export of a disk fill did not close cleanly'));
      await deleteNode(qmp, fill.node).catch((err: unknown) => this.log.warn({ err, disk: d.name }, 'the node of a disk fill could not be deleted'));
    }
  }

  /** close/destroy: the fills go without being finished (the VM stays incomplete). */
  private async dropFills(): Promise<void> {
    const qmp = this.qmp && this.qmp.isOpen ? this.qmp : null;
    for (const [i, fill] of this.fills.entries()) {
      if (!fill) continue;
      this.fills[i] = null;
      await Promise.all(fill.inFlight);
      await fill.client.close().catch(() => undefined);
      if (qmp) {
        await fill.exp.close().catch(() => undefined);
        await deleteNode(qmp, fill.node).catch(() => undefined);
      }
    }
  }

  /** Something must happen before the disks are usable: a fill to end, a staged base to attach, tracking to start. */
  private needsFinish(): boolean {
    return this.rec.trackingPending || this.rec.disks.some((d) => d.staged !== '') || this.fills.some((f) => f !== null);
  }

  /**
   * Makes a target's disks whole (on the turn queue, before anything reads or runs them): each fill ends, each
   * staged base becomes its disk's backing in QEMU (the header names it already), the blocks the fill wrote join the
   * disk's extra changes, and an incoming clone's change tracking starts (nothing wrote its disks since the migration
   * landed). Idempotent; FailedPrecondition while the migration has not landed.
   */
  private async finishStaged(qmp: QmpClient): Promise<void> {
    if (!this.needsFinish()) return;
    if (this.fillBroken) throw new UnavailableError(this.fillBroken);
    const st = await qmp.queryStatus();
    if (st.status === 'inmigrate') throw new FailedPreconditionError(`vm ${this.id}: its incoming migration has not landed yet; its disks are usable once it has`);
    if (this.rec.trackingPending) {
      // QEMU 10 leaves a migrated VM's block nodes inactive until `cont` when it lands paused (-S): snapshots and
      // bitmaps taken before the clone first runs need them active. (The source gave up its images at the switchover.)
      await qmp.execute('blockdev-set-active', { active: true }).catch((err: unknown) => {
        if (!(err instanceof QmpError && err.qmpClass === 'CommandNotFound')) throw err;
      });
    }
    for (let i = 0; i < this.fills.length; i++) await this.endFill(qmp, i);
    for (const [i, d] of this.rec.disks.entries()) {
      if (!d.staged) continue;
      const node = await activeNode(qmp, d.device);
      // Attached already by an earlier try that failed after it: only the rest is left to do.
      const attached = (await queryChain(qmp, node).catch(() => [])).some((n) => n.filename === d.staged);
      if (!attached) await attachBacking(qmp, { node, basePath: d.staged, baseNode: `doppel-base${i}` });
      // The header names the base by its absolute path while this QEMU runs (see QemuDriver.create): the image is
      // active now, so QEMU itself writes it (a linked base staged after the migration landed is not named yet).
      await qmp.execute('change-backing-file', { device: node, 'image-node-name': node, 'backing-file': d.staged });
      const blocks = this.disks()[i]!.blockCount;
      const written = this.written[i];
      if (written && written.some((w) => w !== 0)) {
        const x: ExtraChanges = d.extraChanges ?? { inherited: false, since: null, bits: '' };
        const bits = bitsFromBase64(x.bits, bitmapWords(blocks));
        orInto(bits, written);
        d.extraChanges = { ...x, bits: bitsToBase64(bits) };
      }
      this.written[i] = null;
      d.bases.push({ path: d.staged, shared: d.stagedLinked });
      this.log.debug({ disk: d.name, base: d.staged, shared: d.stagedLinked }, 'staged base attached');
      d.staged = '';
      d.stagedLinked = false;
      this.save();
    }
    if (this.rec.trackingPending) {
      for (const d of this.rec.disks) {
        const node = await activeNode(qmp, d.device);
        if (trackingState(await listDirtyBitmaps(qmp, node)).since === null) await startChangeTracking(qmp, node, '');
      }
      this.rec.trackingPending = false;
      this.save();
    }
  }

  /** Ends a target's fill now (copyFrozenDisks, linkFrozenDisks); otherwise the next snapshot, run or markComplete does. */
  finishDisks(): Promise<void> {
    return this.exclusive(async () => this.finishStaged(await this.conn()));
  }

  /**
   * An incoming clone on a shared datastore, before its migration: each disk is to overlay `bases[i]` (the source's
   * frozen image, absolute) instead of a blank staged base (see linkNow). QEMU attaches them when the disks are
   * finished (after the migration landed).
   */
  stageLinkedBases(bases: readonly string[]): Promise<void> {
    return this.exclusive(() => this.linkNow(bases.map((b) => [b])));
  }

  /**
   * Target side, shared datastore (a linked clone): an incoming VM's blank disks overlay these frozen chains (from
   * the source's shareable DiskSnapshot.chains: datastore-relative, bottom first) instead of their blank staged
   * bases. Before its migration landed or after, while it is paused, before any block was written into it. QEMU
   * attaches each chain's top when the disks are finished (the next snapshot, run, markComplete or liveDiskView).
   * The chains stay the source's: shared, never written or deleted by this VM.
   */
  linkDisks(chains: string[][]): Promise<void> {
    return this.exclusive(async () => {
      const root = join(this.diskDir, '..', '..');
      if (!Array.isArray(chains)) throw new InvalidArgumentError('linkDisks needs one chain per disk');
      const abs = chains.map((chain, i) => {
        if (!Array.isArray(chain) || chain.length === 0) throw new InvalidArgumentError(`linkDisks: the chain of disk ${i} is empty`);
        return chain.map((id) => {
          const p = typeof id === 'string' && id && !isAbsolute(id) ? resolve(root, id) : '';
          if (!p.startsWith(root + sep)) throw new InvalidArgumentError(`linkDisks: layer ${JSON.stringify(id)} of disk ${i} is not a datastore-relative path inside ${root}`);
          return p;
        });
      });
      await this.linkNow(abs);
    });
  }

  /** linkDisks and stageLinkedBases (on the turn queue): each disk's blank staged base gives way to a frozen chain (absolute, bottom first). */
  private async linkNow(chains: string[][]): Promise<void> {
    const qmp = this.liveQmp();
    if (chains.length !== this.rec.disks.length) throw new InvalidArgumentError(`${chains.length} chains to link for vm ${this.id}, which has ${this.rec.disks.length} disks`);
    if (this.rec.complete || this.completing) throw new FailedPreconditionError(`vm ${this.id} is complete: only an incoming clone links its disks`);
    const st = await qmp.queryStatus();
    if (st.running) throw new FailedPreconditionError(`vm ${this.id} is running: its disks can be linked only before it runs`);
    for (const [i, d] of this.rec.disks.entries()) {
      if (!d.staged || d.stagedLinked || this.rec.target !== 'incoming' || this.fills[i] || this.written[i]) {
        throw new FailedPreconditionError(`disk '${d.name}' of vm ${this.id} is not the blank disk of an incoming clone (filled, linked already, or not a clone)`);
      }
      const top = chains[i]!.at(-1)!;
      for (const p of chains[i]!) {
        checkImagePath(p, `linked layer of disk '${d.name}'`);
        if (!existsSync(p)) throw new NotFoundError(`linked layer ${p} of disk '${d.name}' does not exist (is the datastore shared with the source's host?)`);
      }
      const [info] = await imageInfo(top, { forceShare: true });
      if (info?.virtualSize !== d.sizeBytes) throw new InvalidArgumentError(`linked layer ${top} has ${info?.virtualSize} bytes, disk '${d.name}' of vm ${this.id} ${d.sizeBytes}`);
    }
    for (const [i, d] of this.rec.disks.entries()) {
      const chain = chains[i]!;
      const top = chain.at(-1)!;
      // Before the migration landed QEMU holds the image inactive: its header names the base now (by its absolute
      // path, like a staged base's). After, the image is QEMU's: finishStaged names it through QEMU.
      if (st.status === 'inmigrate') await runQemuImg(['rebase', '-u', '-f', 'qcow2', '-F', 'qcow2', '-b', top, d.path], `naming ${top} as the backing of ${d.path}`);
      this.removeOwnFiles([d.staged]);
      d.bases.push(...chain.slice(0, -1).map((path) => ({ path, shared: true })));
      d.staged = top;
      d.stagedLinked = true;
      this.save();
    }
    this.log.info({ chains }, 'disks linked to frozen chains on the shared datastore');
  }

  createStorageSnapshot(): Promise<StorageSnapshotMade> {
    return Promise.reject(notYet('createStorageSnapshot (persistent storage snapshots)'));
  }

  revertDisks(): Promise<void> {
    return Promise.reject(notYet('revertDisks'));
  }

  blocksWrittenSince(): Uint32Array[] {
    throw notYet('blocksWrittenSince');
  }

  /**
   * Disk `disk` as it is now, read through a read-only NBD export of its active node (opened on the turn queue:
   * a target's fill ends first). Only while the VM is not running. The export closes when the VM next runs or
   * snapshots its disks, when this disk is viewed again, and at close/destroy; a read after that is a
   * FailedPreconditionError. isAllocated says true for every block (holes still read as zeros, cheaply).
   */
  liveDiskView(disk: number): DiskView {
    this.checkUsable();
    const d = this.diskRecord(disk);
    if (this._state === 'running') throw new FailedPreconditionError(`vm ${this.id} is running: a live view of its disk '${d.name}' is consistent only while it is not`);
    for (const lv of this.liveViews.filter((x) => x.disk === disk)) this.retireLiveView(lv);
    const info = this.disks()[disk]!;
    let live: LiveView | undefined;
    const opening = this.exclusive(async () => {
      if (live?.closed) throw new FailedPreconditionError(`the live view of disk '${d.name}' of vm ${this.id} was closed before it opened`);
      const qmp = await this.conn();
      await this.finishStaged(qmp);
      if ((await qmp.queryStatus()).running) throw new FailedPreconditionError(`vm ${this.id} is running: a live view of its disk '${d.name}' is consistent only while it is not`);
      return openQemuExportView(qmp, { node: await activeNode(qmp, d.device), socketPath: this.rec.nbdSocket, name: d.name, logger: this.log });
    });
    // A view nobody reads still opens (and closes later): its failure is the reader's to see.
    opening.catch(() => undefined);
    live = { disk, closed: false, opening };
    this.liveViews.push(live);
    return new LiveDiskView(info, live, `the live view of disk '${d.name}' of vm ${this.id}`);
  }

  private retireLiveView(lv: LiveView): void {
    lv.closed = true;
    this.liveViews = this.liveViews.filter((x) => x !== lv);
    void lv.opening.then((v) => v.close()).catch(() => undefined);
  }

  /** Closes every live view (inside a turn: the views' openings queued before it are done). */
  private async closeLiveViews(): Promise<void> {
    const views = this.liveViews;
    this.liveViews = [];
    for (const lv of views) {
      lv.closed = true;
      await lv.opening.then((v) => v.close()).catch(() => undefined);
    }
  }

  /**
   * Target side, before the clone runs: the disk's changes become the source's (`since` and bits, replacing the
   * blocks a fill wrote so far: the source's changes already describe how the filled disk differs from `since`);
   * later fills and guest writes add to them. null marks tracking lost. Kept in the VM's record; the next snapshot
   * with a checkpoint reports them OR-ed with what QEMU tracked since, and its commit clears them.
   */
  inheritChanges(disk: number, changes: BlockChanges | null): void {
    this.checkUsable();
    const d = this.diskRecord(disk);
    if (this.open || this.pending) throw new FailedPreconditionError(`vm ${this.id} has an open disk snapshot: changes are inherited before one is taken`);
    const words = bitmapWords(this.disks()[disk]!.blockCount);
    if (changes) {
      if (typeof changes.since !== 'string') throw new InvalidArgumentError(`inherited changes of disk '${d.name}': since must be a checkpoint id or ''`);
      if (!(changes.bitmap instanceof Uint32Array) || changes.bitmap.length !== words) {
        throw new InvalidArgumentError(`inherited changes of disk '${d.name}': a bitmap of ${changes.bitmap?.length} words, the disk has ${words}`);
      }
    }
    this.written[disk] = null;
    d.extraChanges = changes ? { inherited: true, since: changes.since, bits: bitsToBase64(changes.bitmap) } : { inherited: true, since: null, bits: '' };
    this.save();
  }

  /** A checkpoint's changes as QEMU tracked them, with the disk's extra changes (a fill's blocks, inherited ones). */
  private withExtraChanges(disk: number, tracked: BlockChanges | null): BlockChanges | null {
    const x = this.rec.disks[disk]?.extraChanges;
    if (!x) return tracked;
    if (!tracked) return null;
    const since = x.inherited ? x.since : tracked.since;
    if (since === null) return null;
    const bitmap = tracked.bitmap.slice();
    orInto(bitmap, bitsFromBase64(x.bits, bitmap.length));
    return { since, bitmap };
  }

  /** A checkpoint ended: commit covers the extra changes (cleared), abort keeps them, invalidate marks them lost. */
  private settleExtraChanges(disk: number, outcome: SnapshotOutcome): void {
    const d = this.rec.disks[disk];
    if (!d || (!d.extraChanges && outcome !== 'invalidate')) return;
    if (outcome === 'commit') d.extraChanges = null;
    else if (outcome === 'invalidate') d.extraChanges = { inherited: true, since: null, bits: '' };
    else return;
    this.save();
  }

  info(host: string): VmInfo {
    const { identity } = this.spec;
    if (!identity) throw new InternalError(`vm ${this.id} has no identity`);
    return { id: this.id, host, state: this._state, cloneOf: this.cloneOf, networkIsolated: this.rec.networkIsolated, ...this.spec, identity };
  }
}

/** The -kernel/-initrd/-append of a direct kernel boot; none for a firmware boot. */
function bootArgs(boot: QemuBoot | null): { kernel?: string; initrd?: string; append?: string } {
  if (!boot?.kernel) return {};
  return { kernel: boot.kernel, ...(boot.initrd ? { initrd: boot.initrd } : {}), ...(boot.append ? { append: boot.append } : {}) };
}
