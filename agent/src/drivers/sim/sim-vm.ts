/**
 * One simulated VM: guest memory and its dirty bitmap in SharedArrayBuffers, a
 * worker thread as its vCPU, machine state that the worker keeps current, and
 * disks as layer chains in the datastore (see vm-disks.ts).
 *
 * What persists is what a host reboot keeps: the configuration and the disks.
 * Memory does not: a VM loaded after an agent restart comes back suspended,
 * with memory and vCPU state as at a fresh boot from its seed.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmInfo, VmRunState, VmSpec } from '../../../../shared/src/mod.js';
import { FailedPreconditionError, InternalError, InvalidArgumentError, PAGE_SIZE, isZeroPage } from '../../../../shared/src/mod.js';
import type {
  BlockChanges,
  DiskInfo,
  DiskSnapshot,
  DiskView,
  DriverVm,
  BypassVolumeInfo,
  GuestPages,
  HotFreeze,
  HotFreezeOptions,
  HotFreezeStats,
  LayerUsage,
  MachineStateBlob,
  SnapshotOptions,
  SnapshotOutcome,
  StorageSnapshotMade,
  VmUsageCounters,
} from '../driver.js';
import { HOT_BUFFER_MAX_BYTES } from '../driver.js';
import { CMD, CTRL, DEVICE_FIELDS, HOT_CMD, HOT_STATE, MS, PATTERN_CODE, STATE, VCPU_FIELDS, type GuestBuffers, type GuestWorkerData } from './layout.js';
import { HDR, STAT, WriteBuffer, newHotBuffers } from './hot-buffer.js';
import { fillGuestMemory } from './content.js';
import { DISK_WRITE_SIZE } from './guest-workload.js';
import { seedState } from './prng.js';
import type { VmDisks } from './vm-disks.js';
import { ChangeTracker } from './cbt.js';
import { writeVmRecord } from './vm-record.js';
import { waitWhile } from './wait.js';
import type { ChainView, SimDiskSnapshot } from './disk-view.js';
import type { BypassInitiator } from './bypass-initiator.js';

const HANDSHAKE_TIMEOUT_MS = 5_000;
/** The default bound on a hot freeze's write buffer: about a million buffered writes. */
export const HOT_BUFFER_BYTES = 64 * 1024 * 1024;
/** Buffered writes merged per turn of the agent's event loop (about a millisecond's work). */
const MERGE_SLICE = 4096;
const LEVEL_WHAT = {
  io: 'device and disk caches: the disks take new overlays, device state is held',
  ram: 'guest RAM: writes go to the write buffer',
  vcpu: 'vCPU registers: copied as they stand',
} as const;

/**
 * The vCPU thread first writes its kernel thread id (Linux: /proc/thread-self) into `tidCell`, so the driver can
 * read the thread's CPU time (its event loop never idles, so event-loop utilisation says nothing); 0 elsewhere.
 */
function workerFor(data: GuestWorkerData, tidCell: SharedArrayBuffer, transferList: TransferListItem[]): Worker {
  const here = import.meta.url;
  const tid =
    `import { readlinkSync } from 'node:fs'; import { workerData } from 'node:worker_threads'; ` +
    `try { Atomics.store(new Int32Array(workerData.tidCell), 0, Number(readlinkSync('/proc/thread-self').split('/').pop()) || 0); } catch {}`;
  let boot: string;
  if (here.endsWith('.ts')) {
    // Running from sources under tsx: register tsx in the worker before loading the TypeScript entry.
    const entry = new URL('./guest-worker.ts', here).href;
    const api = import.meta.resolve('tsx/esm/api');
    boot = `${tid} import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry)});`;
  } else {
    boot = `${tid} await import(${JSON.stringify(new URL('./guest-worker.js', here).href)});`;
  }
  return new Worker(boot, { eval: true, workerData: { ...data, tidCell }, transferList });
}

/** vCPU and device state from machine-state words, as saveState gives it. */
function stateBlob(words: Uint32Array): MachineStateBlob {
  const pick = (fields: readonly (keyof typeof MS)[]) => Buffer.from(JSON.stringify(Object.fromEntries(fields.map((f) => [f, words[MS[f]]!]))));
  return { vcpu: pick(VCPU_FIELDS), devices: pick(DEVICE_FIELDS) };
}

/** CPU time (ms) of thread `tid` of this process, from the scheduler's statistics; null if unknown. */
function threadCpuMs(tid: number): number | null {
  if (tid <= 0) return null;
  try {
    const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    return Number.isFinite(ns) ? ns / 1e6 : null;
  } catch {
    return null;
  }
}

export interface SimVmInit {
  id: string;
  spec: VmSpec;
  cloneOf: string;
  /** `boot`: memory and vCPU as at a fresh boot from the seed; `empty`: zeros, awaiting incoming state. */
  memory: 'boot' | 'empty';
  disks: VmDisks;
  vmDir: string;
  networkIsolated: boolean;
  /** False for an incoming clone or a restore until it first runs. */
  complete: boolean;
  /** The guest's path to its bypass volumes on the array; undefined when it has none. */
  bypass?: BypassInitiator;
}

export class SimVm implements DriverVm {
  readonly pageSize = PAGE_SIZE;
  readonly pageCount: number;
  private readonly buffers: GuestBuffers;
  private readonly ctrl: Int32Array;
  private readonly machine: Uint32Array;
  private readonly dirty: Int32Array;
  private worker: Worker | undefined;
  /** The vCPU thread's kernel thread id (0 until it has started, or when the host cannot tell). */
  private tidCell = new Int32Array(new SharedArrayBuffer(4));
  private workerError: Error | undefined;
  private _state: VmRunState = 'suspended';
  private suspends = 0;
  /** The hot freeze in force, if any. */
  private hot: WriteBuffer | undefined;
  private hotSeq = 0;
  /** Tests: journal every hot freeze's buffered writes, and keep the last journaled freeze for a look afterwards. */
  journalHotFreezes = false;
  lastHotFreeze: HotFreeze | undefined;
  readonly id: string;
  readonly spec: VmSpec;
  readonly cloneOf: string;
  private readonly vmDisks: VmDisks;
  private readonly vmDir: string;
  private readonly bypass: BypassInitiator | undefined;
  private isolated: boolean;
  private complete: boolean;
  /** Run, suspend, snapshots, merges and disk writes take turns: each sees the guest either running or parked. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(init: SimVmInit) {
    const { spec } = init;
    this.id = init.id;
    this.spec = spec;
    this.cloneOf = init.cloneOf;
    this.vmDisks = init.disks;
    this.vmDir = init.vmDir;
    this.bypass = init.bypass;
    this.isolated = init.networkIsolated;
    this.complete = init.complete;
    this.pageCount = (spec.memoryMib * 1024 * 1024) / this.pageSize;
    this.buffers = {
      memory: new SharedArrayBuffer(this.pageCount * this.pageSize),
      dirty: new SharedArrayBuffer(Math.ceil(this.pageCount / 32) * 4),
      ctrl: new SharedArrayBuffer(CTRL.length * 4),
      machine: new SharedArrayBuffer(MS.length * 4),
    };
    this.ctrl = new Int32Array(this.buffers.ctrl);
    this.machine = new Uint32Array(this.buffers.machine);
    this.dirty = new Int32Array(this.buffers.dirty);
    Atomics.store(this.ctrl, CTRL.state, STATE.booting);
    Atomics.store(this.ctrl, CTRL.netIsolated, this.isolated ? 1 : 0);
    if (init.memory === 'boot') {
      fillGuestMemory(this.buffers.memory, this.pageSize, spec.workload.seed);
      const s = seedState(spec.workload.seed);
      this.machine.set(s, MS.prng0);
      this.machine[MS.rsp] = 0x7ffff000;
      this.machine[MS.flags] = 0x202;
    }
  }

  get state(): VmRunState {
    return this._state;
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.turn.then(fn, fn);
    this.turn = p.catch(() => undefined);
    return p;
  }

  get networkIsolated(): boolean {
    return this.isolated;
  }

  run(opts: { isolateNetwork?: boolean } = {}): Promise<void> {
    return this.exclusive(() => this.runNow(opts));
  }

  private async runNow(opts: { isolateNetwork?: boolean } = {}): Promise<void> {
    if (this.workerError) throw new InternalError(`vm ${this.id}: guest crashed: ${this.workerError.message}`);
    if (opts.isolateNetwork && !this.isolated) {
      this.isolated = true;
      Atomics.store(this.ctrl, CTRL.netIsolated, 1);
      // A guest cut off from its network behaves differently from here on (no packets, other timers): its
      // workload takes another course than the source's, as a real clone's would.
      this.machine[MS.prng1] = (this.machine[MS.prng1]! ^ 0x5bd1e995) >>> 0;
      this.saveRecord();
    }
    if (this._state === 'running') return;
    Atomics.store(this.ctrl, CTRL.cmd, CMD.run);
    Atomics.notify(this.ctrl, CTRL.cmd);
    if (!this.worker) this.startWorker();
    await this.waitState(STATE.running);
    this._state = 'running';
    if (!this.complete) {
      // An incoming clone or a restore runs once it is whole: from now on a restart keeps it.
      this.complete = true;
      this.saveRecord();
    }
    this.vmDisks.compact(true, () => this.wake());
  }

  suspend(): Promise<void> {
    return this.exclusive(() => this.suspendNow());
  }

  private async suspendNow(): Promise<void> {
    if (!this.worker || this._state === 'suspended') {
      this._state = 'suspended';
      return;
    }
    Atomics.store(this.ctrl, CTRL.cmd, CMD.suspend);
    Atomics.notify(this.ctrl, CTRL.cmd);
    try {
      await this.waitState(STATE.suspended);
    } catch (err) {
      // Withdraw the request so a late-parking guest runs on instead of staying parked.
      Atomics.store(this.ctrl, CTRL.cmd, CMD.run);
      Atomics.notify(this.ctrl, CTRL.cmd);
      throw err;
    }
    this._state = 'suspended';
    this.suspends++;
  }

  get suspendCount(): number {
    return this.suspends;
  }

  /** Stops the vCPU for good (before a destroy or a driver close). */
  private async stopWorker(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    Atomics.store(this.ctrl, CTRL.cmd, CMD.stop);
    Atomics.notify(this.ctrl, CTRL.cmd);
    try {
      await this.waitState(STATE.stopped);
    } finally {
      this.worker = undefined;
      this.tidCell = new Int32Array(new SharedArrayBuffer(4));
      this._state = 'suspended';
      await w.terminate();
      this.vmDisks.detachWorker();
    }
  }

  /** Wakes a guest that sleeps between writes, so it sees a message at once. */
  private wake(): void {
    Atomics.notify(this.ctrl, CTRL.cmd);
  }

  markComplete(): void {
    if (this.complete) return;
    this.complete = true;
    this.saveRecord();
  }

  /** Writes the VM's configuration record (vm.json). */
  saveRecord(): void {
    writeVmRecord(this.vmDir, { id: this.id, spec: this.spec, cloneOf: this.cloneOf, networkIsolated: this.isolated, complete: this.complete });
  }

  /** The guest is running and able to answer (merges in it can progress). */
  private get live(): boolean {
    return this._state === 'running' && this.worker !== undefined && !this.workerError;
  }

  /**
   * A clean stop: the vCPU stops, open snapshots end as aborted, change tracking is written as clean. A guest
   * that crashed may have written a block without setting its bit, so its tracking stays marked in use (lost).
   */
  close(): Promise<void> {
    return this.exclusive(async () => {
      let clean = this.workerError === undefined;
      try {
        await this.stopWorker();
      } catch {
        clean = false;
      }
      this.vmDisks.abortSnapshots();
      this.vmDisks.close();
      if (clean) ChangeTracker.save(this.vmDir, this.vmDisks.trackers, true);
      // The guest's last bypass writes reach the array before the VM is gone (a short wait: the array may be down).
      await this.bypass?.flush(2_000).catch(() => undefined);
      this.bypass?.close();
    });
  }

  /** Stops the vCPU and deletes the VM's disks (shared bases stay while others use them). */
  destroy(): Promise<void> {
    return this.exclusive(async () => {
      try {
        await this.stopWorker();
      } finally {
        this.vmDisks.destroy();
        this.bypass?.close();
      }
    });
  }

  private startWorker(): void {
    const disks = this.vmDisks.workerData();
    const bypass = this.bypass?.workerData(this.spec.workload.bypassWriteRate ?? 0);
    const { hotset } = PATTERN_CODE;
    const hotPages = Math.max(1, Math.floor(this.pageCount / 10));
    const data: GuestWorkerData = {
      buffers: this.buffers,
      pageCount: this.pageCount,
      pageSize: this.pageSize,
      dirtyRate: this.spec.workload.dirtyRate,
      pattern: PATTERN_CODE[this.spec.workload.pattern] ?? hotset,
      hotPages,
      hotBase: (this.spec.workload.seed * 7919) % Math.max(1, this.pageCount - hotPages),
      seed: this.spec.workload.seed,
      diskWriteRate: this.spec.workload.diskWriteRate ?? 0,
      disks: disks.data,
      tokenRate: this.spec.workload.tokenRate ?? 0,
      bypass: bypass?.data ?? null,
    };
    this.tidCell = new Int32Array(new SharedArrayBuffer(4));
    const w = workerFor(data, this.tidCell.buffer as SharedArrayBuffer, bypass ? [disks.transfer, bypass.transfer] : [disks.transfer]);
    w.on('error', (err) => {
      this.workerError = err;
    });
    w.on('exit', (code) => {
      if (this.worker === w) this.workerError ??= new Error(`the guest exited (code ${code})`);
    });
    this.worker = w;
  }

  /** The handshake: wait until the guest acknowledges the requested state. */
  private async waitState(want: number): Promise<void> {
    const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
    for (;;) {
      const cur = Atomics.load(this.ctrl, CTRL.state);
      if (cur === want) return;
      if (this.workerError) throw new InternalError(`vm ${this.id}: guest crashed: ${this.workerError.message}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new InternalError(`vm ${this.id}: guest did not acknowledge state ${want} within ${HANDSHAKE_TIMEOUT_MS} ms`);
      await waitWhile(this.ctrl, CTRL.state, cur, Math.min(left, 50));
    }
  }

  async memoryHash(): Promise<string> {
    const h = createHash('sha256');
    const all = new Uint8Array(this.buffers.memory);
    const step = 64 * 1024 * 1024;
    for (let off = 0; off < all.length; off += step) {
      h.update(all.subarray(off, Math.min(all.length, off + step)));
      // Yield between slices so heartbeats and streams keep flowing while a large VM hashes.
      if (off + step < all.length) await new Promise((r) => setImmediate(r));
    }
    return h.digest('hex');
  }

  async measureDirtyRate(windowMs: number): Promise<number> {
    const pages = this.pages();
    pages.clearDirtyLog();
    const t0 = performance.now();
    await sleep(windowMs);
    const n = pages.countDirty();
    return (n * 1000) / (performance.now() - t0);
  }

  pages(): GuestPages {
    const { pageSize, pageCount, dirty } = this;
    const mem = Buffer.from(this.buffers.memory);
    return {
      pageSize,
      pageCount,
      dirtyWords: dirty.length,
      clearDirtyLog: () => {
        for (let w = 0; w < dirty.length; w++) Atomics.store(dirty, w, 0);
      },
      takeDirtyWord: (w) => Atomics.exchange(dirty, w, 0),
      countDirty: () => {
        let n = 0;
        for (let w = 0; w < dirty.length; w++) {
          let v = Atomics.load(dirty, w);
          while (v !== 0) {
            v &= v - 1;
            n++;
          }
        }
        return n;
      },
      page: (i) => mem.subarray(i * pageSize, (i + 1) * pageSize),
      writePage: (i, data) => {
        data.copy(mem, i * pageSize, 0, pageSize);
      },
      zeroPage: (i) => {
        // Fresh guest memory is already zero: reading it maps the kernel's zero page, writing it would
        // fault in and zero a real page. Only pages that hold data are cleared.
        const p = mem.subarray(i * pageSize, (i + 1) * pageSize);
        if (!isZeroPage(p)) p.fill(0);
      },
    };
  }

  saveState(): MachineStateBlob {
    return stateBlob(this.machine);
  }

  loadState(state: MachineStateBlob): void {
    const apply = (buf: Buffer, fields: readonly (keyof typeof MS)[], what: string) => {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(buf.toString('utf8')) as Record<string, unknown>;
      } catch (err) {
        throw new InvalidArgumentError(`${what} state is not valid JSON`, { cause: err });
      }
      for (const f of fields) {
        const v = obj[f];
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffffffff) {
          throw new InvalidArgumentError(`${what} state field '${f}' is missing or out of range`);
        }
        this.machine[MS[f]] = v;
      }
    };
    apply(state.vcpu, VCPU_FIELDS, 'vCPU');
    apply(state.devices, DEVICE_FIELDS, 'device');
  }

  guestWrites(): number {
    return this.machine[MS.writesHi]! * 2 ** 32 + this.machine[MS.writesLo]!;
  }

  diskWrites(): number {
    return this.machine[MS.diskWritesHi]! * 2 ** 32 + this.machine[MS.diskWritesLo]!;
  }

  /**
   * The sim's guest writes its disks and memory only: it never reads its disks (blkReads stays 0) and its NIC
   * counters count simulated packets with no payload that never leave the host, so reads and network are 0.
   */
  usage(): VmUsageCounters {
    const tid = this.worker && !this.workerError ? Atomics.load(this.tidCell, 0) : 0;
    return { cpuMs: threadCpuMs(tid), diskReadBytes: 0, diskWriteBytes: this.diskWrites() * DISK_WRITE_SIZE, netRxBytes: 0, netTxBytes: 0 };
  }

  disks(): DiskInfo[] {
    return this.vmDisks.infos.map((i) => ({ ...i }));
  }

  /** Layer ids per disk, bottom first (for tests and diagnostics). */
  diskChains(): string[][] {
    return this.vmDisks.chainIds();
  }

  bypassVolumes(): BypassVolumeInfo[] {
    const vols = this.spec.bypass ?? [];
    return vols.map((v, i) => ({ name: v.name, volume: this.bypass?.volumes[i] ?? '', sizeBytes: v.sizeMib * 2 ** 20 }));
  }

  async flushBypass(timeoutMs?: number): Promise<void> {
    await this.bypass?.flush(timeoutMs);
  }

  blocksWrittenSince(base: string[][], snap: DiskSnapshot): Uint32Array[] {
    if (base.length !== snap.disks.length) throw new InvalidArgumentError(`chains for ${base.length} of ${snap.disks.length} disks`);
    return snap.disks.map((v, d) => (v as ChainView).blocksAbove(base[d]!));
  }

  storageUsage(): LayerUsage[] {
    return this.vmDisks.storageUsage();
  }

  hotFreeze(opts: HotFreezeOptions = {}): Promise<HotFreeze> {
    return this.exclusive(() => this.hotFreezeNow(opts));
  }

  private async hotFreezeNow(opts: HotFreezeOptions): Promise<HotFreeze> {
    const bytes = opts.bufferBytes ?? HOT_BUFFER_BYTES;
    if (!Number.isInteger(bytes) || bytes < 4096 || bytes > HOT_BUFFER_MAX_BYTES) {
      throw new InvalidArgumentError(`a hot-freeze buffer must be 4 KiB to ${HOT_BUFFER_MAX_BYTES / 2 ** 20} MiB (got ${bytes})`);
    }
    if (!this.live) throw new FailedPreconditionError(`vm ${this.id} is ${this._state}: a hot clone freezes a running VM (clone a suspended one as it is)`);
    if (this.hot) throw new FailedPreconditionError(`vm ${this.id} is already frozen for another hot clone`);
    // A merge from an earlier snapshot finishes first, in the worker, so the chains the freeze stacks on are settled.
    await this.foldDisks();
    const buffers = newHotBuffers(bytes, MS.length, opts.journal ?? this.journalHotFreezes);
    const buf = new WriteBuffer(buffers);
    const id = ++this.hotSeq;
    // The id goes first: the guest ignores (and drops) a 'hot' message of any other id.
    Atomics.store(this.ctrl, CTRL.hotId, id);
    const disks = this.vmDisks.freeze({ shareable: true }, this, { id, buffers });
    Atomics.store(this.ctrl, CTRL.hotState, HOT_STATE.live);
    Atomics.store(this.ctrl, CTRL.hotCmd, HOT_CMD.freeze);
    Atomics.notify(this.ctrl, CTRL.hotCmd);
    this.wake();
    const outcome = await this.freezeHandshake();
    if (outcome !== 'frozen') {
      // The guest did not freeze and never will for this request: it goes on writing the layers it had, so it
      // gets the new overlays the plain way, and the snapshot ends here (inside this turn: release() would queue
      // behind it).
      Atomics.store(this.ctrl, CTRL.hotId, 0);
      Atomics.store(this.ctrl, CTRL.hotState, HOT_STATE.live);
      this.vmDisks.postChains();
      this.wake();
      (disks as SimDiskSnapshot).released = true;
      this.vmDisks.endSnapshot(disks, 'abort');
      if (this.workerError) throw new InternalError(`vm ${this.id}: guest crashed: ${this.workerError.message}`);
      throw new InternalError(
        outcome === 'failed'
          ? `vm ${this.id}: the guest found no freeze request to take; it runs on unfrozen`
          : `vm ${this.id}: the guest did not take the hot freeze within ${HANDSHAKE_TIMEOUT_MS} ms; it runs on unfrozen`,
      );
    }
    this.hot = buf;
    const at = (i: number) => buf.stats[i]!;
    const levels = [
      { level: 'io' as const, what: LEVEL_WHAT.io, frozenAt: at(STAT.ioFrozenAt) },
      { level: 'ram' as const, what: LEVEL_WHAT.ram, frozenAt: at(STAT.ramFrozenAt) },
      { level: 'vcpu' as const, what: LEVEL_WHAT.vcpu, frozenAt: at(STAT.vcpuFrozenAt) },
    ];
    let stats: Promise<HotFreezeStats> | undefined;
    const freeze: HotFreeze = {
      levels,
      pages: this.pages(),
      state: stateBlob(new Uint32Array(buffers.frozenMachine)),
      disks,
      bufferedWrites: () => buf.appended,
      bufferFull: () => buf.full && !buf.drained,
      frozenHash: () => this.memoryHash(),
      unfreeze: () => {
        // A failed unfreeze is not remembered: the caller may try again.
        stats ??= this.exclusive(() => this.unfreezeNow(buf)).catch((err: unknown) => {
          stats = undefined;
          throw err;
        });
        return stats;
      },
      journal: () => buf.journalEntries(),
    };
    // Tests look at the last freeze's journal; otherwise its buffers go with the freeze.
    if (buffers.journal) this.lastHotFreeze = freeze;
    return freeze;
  }

  /**
   * Waits for the guest to take a hot freeze. On a timeout the request is withdrawn (freeze swapped back to none)
   * unless the guest committed to it first; a committed guest finishes within a step, so it is waited for.
   */
  private async freezeHandshake(): Promise<'frozen' | 'failed' | 'timeout'> {
    const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
    for (;;) {
      const st = Atomics.load(this.ctrl, CTRL.hotState);
      if (st === HOT_STATE.frozen) return 'frozen';
      if (st === HOT_STATE.failed) return 'failed';
      const gone = this.workerError !== undefined || !this.worker;
      if (gone || Date.now() > deadline) {
        if (Atomics.compareExchange(this.ctrl, CTRL.hotCmd, HOT_CMD.freeze, HOT_CMD.none) === HOT_CMD.freeze) return 'timeout';
        if (gone) return 'timeout';
      }
      await waitWhile(this.ctrl, CTRL.hotState, st, 50);
    }
  }

  /**
   * Merges a hot freeze's buffer back into guest memory on this thread, in slices between turns of the event loop,
   * while the guest runs on and keeps buffering; the guest ends the freeze the first time it finds all it
   * appended merged. A parked or stopped guest cannot: then the merge finishes here and ends it.
   */
  private async unfreezeNow(buf: WriteBuffer): Promise<HotFreezeStats> {
    const mem32 = new Uint32Array(this.buffers.memory);
    const wordsPerPage = this.pageSize >>> 2;
    const epoch = () => performance.timeOrigin + performance.now();
    if (buf.stats[STAT.mergeStartAt] === 0) buf.stats[STAT.mergeStartAt] = epoch();
    if (this.live) {
      Atomics.store(this.ctrl, CTRL.hotCmd, HOT_CMD.unfreeze);
      Atomics.notify(this.ctrl, CTRL.hotCmd);
      this.wake();
    }
    // No deadline: the guest cannot append past the buffer's end, so the merge catches up with it; a guest that
    // stops or dies meanwhile is merged here.
    while (Atomics.load(this.ctrl, CTRL.hotState) !== HOT_STATE.live) {
      if (!this.live) {
        // Parked, stopped or crashed: nothing appends any more.
        buf.mergeSome(mem32, this.dirty, wordsPerPage, Infinity);
        buf.stats[STAT.mergeEndAt] = epoch();
        Atomics.store(this.ctrl, CTRL.hotCmd, HOT_CMD.none);
        Atomics.store(this.ctrl, CTRL.hotState, HOT_STATE.live);
        break;
      }
      const n = buf.mergeSome(mem32, this.dirty, wordsPerPage, MERGE_SLICE);
      Atomics.notify(buf.hdr, HDR.merged);
      if (n > 0) await new Promise((r) => setImmediate(r));
      // Caught up: the guest sees it at its next look (within a millisecond) and ends the freeze.
      else await waitWhile(this.ctrl, CTRL.hotState, Atomics.load(this.ctrl, CTRL.hotState), 2);
    }
    this.hot = undefined;
    const st = buf.stats;
    return {
      bufferedWrites: buf.appended,
      mergedWrites: buf.merged,
      stallMs: st[STAT.stallMs]!,
      maxStallMs: st[STAT.maxStallMs]!,
      fullWaits: Atomics.load(buf.hdr, HDR.fullWaits),
      frozenMs: st[STAT.mergeEndAt]! - st[STAT.ramFrozenAt]!,
      mergeMs: st[STAT.mergeEndAt]! - st[STAT.mergeStartAt]!,
    };
  }

  /** The disk as it is now, for tests and checks: consistent only while the guest is suspended. */
  liveDiskView(disk: number): DiskView {
    return this.vmDisks.liveView(disk);
  }

  /**
   * For tests: what a host crash leaves. The vCPU dies at once, nothing is written on the way out (change
   * tracking stays marked in use), and the files are closed. The VM object is unusable afterwards.
   */
  async crash(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this._state = 'suspended';
    if (w) await w.terminate();
    this.vmDisks.close();
    this.bypass?.close();
  }

  /**
   * Resolves once no disk merge runs (a merge starts when a snapshot is released), after folding back shared
   * bases that no linked clone uses any more: the next snapshot then starts from a chain of one layer, and a
   * linked clone of it pins only that one.
   */
  settleDisks(): Promise<void> {
    return this.exclusive(() => this.foldDisks());
  }

  private async foldDisks(): Promise<void> {
    await this.vmDisks.settle(() => this.live);
    this.vmDisks.compact(this.live, () => this.wake());
    await this.vmDisks.settle(() => this.live);
  }

  /**
   * Another VM on this host let go of layers this one may share: folds back bases no one else uses, in the
   * worker. Not while the guest is parked: that may be a clone's pause, which a merge here would lengthen.
   */
  reclaimDisks(): Promise<void> {
    return this.exclusive(async () => {
      if (this.live) this.vmDisks.compact(true, () => this.wake());
    });
  }

  snapshotDisks(opts: SnapshotOptions = {}): Promise<DiskSnapshot> {
    return this.exclusive(async () => (await this.freezeTurn(opts)).snap);
  }

  /** The frozen moment of a snapshot (within a turn), and how long a running guest was paused for it. */
  private async freezeTurn(opts: SnapshotOptions): Promise<{ snap: DiskSnapshot; pauseMs: number }> {
    // A running guest folds what it can first, in its worker (no pause); a parked one may be in a clone's
    // pause, so it only settles (settleDisks before the suspend did the folding).
    if (this.live) await this.foldDisks();
    else await this.vmDisks.settle(() => this.live);
    const wasRunning = this._state === 'running';
    const t0 = performance.now();
    if (wasRunning) await this.suspendNow();
    let snap: DiskSnapshot;
    try {
      // A merge asked for just before the suspend is finished here; normally there is none.
      this.vmDisks.mergeHere();
      snap = this.vmDisks.freeze(opts, this);
    } finally {
      if (wasRunning) await this.runNow();
    }
    return { snap, pauseMs: wasRunning ? performance.now() - t0 : 0 };
  }

  async createStorageSnapshot(ref: string): Promise<StorageSnapshotMade> {
    const { snap, pauseMs } = await this.exclusive(() => this.freezeTurn({ shareable: true }));
    try {
      // While the snapshot is open the VM does not take its frozen layers back, so the pin finds them shared.
      this.vmDisks.pin(snap.chains, ref);
    } finally {
      // No checkpoint: ending it leaves change tracking as it was. The pinned layers stay shared.
      await snap.release('abort');
    }
    return { chains: snap.chains.map((c) => c.slice()), pauseMs };
  }

  revertDisks(chains: string[][]): Promise<void> {
    return this.exclusive(async () => {
      if (this._state === 'running') throw new FailedPreconditionError(`vm ${this.id} is running: its disks can be reverted only while it is not`);
      this.vmDisks.revert(chains);
    });
  }

  /** Called by a snapshot's release(). */
  releaseSnapshot(snap: DiskSnapshot, outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): Promise<void> {
    return this.exclusive(async () => {
      this.vmDisks.endSnapshot(snap, outcome, alsoChanged);
      this.vmDisks.compact(this.live, () => this.wake());
    });
  }

  writeDiskBlocks(disk: number, first: number, data: Buffer): Promise<void> {
    return this.exclusive(async () => {
      if (this._state === 'running') throw new FailedPreconditionError(`vm ${this.id} is running: its disks take blocks only while it is not`);
      this.vmDisks.mergeHere();
      await this.vmDisks.writeBlocks(disk, first, data);
    });
  }

  linkDisks(chains: string[][]): Promise<void> {
    return this.exclusive(async () => {
      if (this._state === 'running') throw new FailedPreconditionError(`vm ${this.id} is running: its disks can be linked only before it runs`);
      this.vmDisks.link(chains);
    });
  }

  inheritChanges(disk: number, changes: BlockChanges | null): void {
    const t = this.vmDisks.trackers[disk];
    if (!t) throw new InvalidArgumentError(`disk ${disk} does not exist (vm ${this.id} has ${this.vmDisks.trackers.length})`);
    t.inherit(changes);
  }

  info(host: string): VmInfo {
    // The driver gives every VM an identity when it creates or loads it.
    const { identity } = this.spec;
    if (!identity) throw new InternalError(`vm ${this.id} has no identity`);
    return { id: this.id, host, state: this._state, cloneOf: this.cloneOf, networkIsolated: this.isolated, ...this.spec, identity };
  }
}
