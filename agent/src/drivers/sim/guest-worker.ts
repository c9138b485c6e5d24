/**
 * The simulated guest's vCPU: a worker thread that writes guest memory at a set
 * rate and pattern, and sets the page's dirty bit after each write, as KVM's
 * dirty log does. It also writes its disks (4 KiB writes, synchronous, through
 * the layer chain) and sets a changed-block bit after each. It parks on a
 * suspend request and acknowledges it, so the driver knows the vCPU really
 * stopped; right after a resume, before writing again, it takes the driver's
 * messages (a new disk chain after a snapshot).
 */
import { workerData } from 'node:worker_threads';
import { CMD, CTRL, MS, STATE, type GuestWorkerData } from './layout.js';
import { xoshiro128ss } from './prng.js';
import { GuestDisks } from './guest-disks.js';
import { DiskWorkload, nextUnit } from './guest-workload.js';

const data = workerData as GuestWorkerData;
const { pageCount, pageSize, dirtyRate, pattern, hotBase, hotPages } = data;
const disks = new GuestDisks(data.disks);
const diskRate = disks.totalBlocks > 0 ? data.diskWriteRate : 0;
const mem32 = new Uint32Array(data.buffers.memory);
const dirty = new Int32Array(data.buffers.dirty);
const ctrl = new Int32Array(data.buffers.ctrl);
const ms = new Uint32Array(data.buffers.machine);
const diskLoad = new DiskWorkload(ms, pattern, disks.totalBlocks, disks.blockSize, data.seed);
const wordsPerPage = pageSize >>> 2;
/** A write touches a 64-byte line: 16 words. */
const LINE_WORDS = 16;
const linesPerPage = wordsPerPage / LINE_WORDS;
/** At most this many writes between two looks at the control word. */
const BURST = 256;
/** Disk writes are slower (a system call each, a copy-up at worst): fewer per look at the control word. */
const DISK_BURST = 64;

function nextPage(): number {
  return nextUnit(ms, pattern, pageCount, hotBase, hotPages, MS.cursor);
}

function writeDisk(): void {
  const { block, offset } = diskLoad.next();
  const n = ms[MS.diskWritesLo]! + 1;
  disks.write(block, offset, diskLoad.data(n, block));
  ms[MS.diskWritesLo] = n >>> 0;
  if (n >>> 0 === 0) ms[MS.diskWritesHi] = (ms[MS.diskWritesHi]! + 1) >>> 0;
  ms[MS.blkWrites] = (ms[MS.blkWrites]! + 1) >>> 0;
}

function writeOne(): void {
  const page = nextPage();
  const r = xoshiro128ss(ms, MS.prng0);
  const line = r % linesPerPage;
  const base = page * wordsPerPage + line * LINE_WORDS;
  // Keep compressible lines compressible: a counter, the page number, then a short repeating record.
  const n = ms[MS.writesLo]! + 1;
  mem32[base] = n;
  mem32[base + 1] = page;
  for (let i = 2; i < LINE_WORDS; i++) mem32[base + i] = (r + (i & 3)) >>> 0;
  // The dirty bit goes up after the data: a copier that cleared the bit before copying sees it again.
  Atomics.or(dirty, page >>> 5, 1 << (page & 31));
  ms[MS.writesLo] = n >>> 0;
  if (n >>> 0 === 0) ms[MS.writesHi] = (ms[MS.writesHi]! + 1) >>> 0;
  ms[MS.rip] = (0x401000 + ((r & 0xfff) << 2)) >>> 0;
  ms[MS.rax] = page;
  ms[MS.rbx] = r;
  // An isolated NIC neither sends nor receives.
  if (Atomics.load(ctrl, CTRL.netIsolated) === 0) {
    if ((r & 7) === 0) ms[MS.nicTx] = (ms[MS.nicTx]! + 1) >>> 0;
    if ((r & 15) === 1) ms[MS.nicRx] = (ms[MS.nicRx]! + 1) >>> 0;
  }
}

function tick(now: number): void {
  const tsc = Math.floor(now * 1000);
  ms[MS.tscLo] = tsc >>> 0;
  ms[MS.tscHi] = Math.floor(tsc / 2 ** 32) >>> 0;
  ms[MS.timerTicks] = (ms[MS.timerTicks]! + 1) >>> 0;
}

/** Pacing of one kind of write: how many are due now, never more than 50 ms behind. */
class Pace {
  private t0 = performance.now();
  private done = 0;
  constructor(
    private readonly rate: number,
    private readonly burst: number,
  ) {}

  reset(now: number): void {
    this.t0 = now;
    this.done = 0;
  }

  /** Writes to make now (at most a burst), or 0. */
  due(now: number): number {
    if (this.rate <= 0) return 0;
    const due = Math.floor(((now - this.t0) * this.rate) / 1000) - this.done;
    if (due <= 0) return 0;
    // A guest that was descheduled does not burst forever.
    if (due > this.rate / 20 + this.burst) this.done += due - this.burst;
    return Math.min(due, this.burst);
  }

  made(n: number): void {
    this.done += n;
  }

  /** Milliseconds until the next write is due (Infinity when idle). */
  waitMs(now: number): number {
    if (this.rate <= 0) return Infinity;
    const next = ((this.done + 1) * 1000) / this.rate;
    return Math.max(0, next - (now - this.t0));
  }
}

function run(): void {
  const mem = new Pace(dirtyRate, BURST);
  const disk = new Pace(diskRate, DISK_BURST);
  Atomics.store(ctrl, CTRL.state, STATE.running);
  Atomics.notify(ctrl, CTRL.state);
  for (;;) {
    const cmd = Atomics.load(ctrl, CTRL.cmd);
    if (cmd === CMD.stop) {
      disks.close();
      Atomics.store(ctrl, CTRL.state, STATE.stopped);
      Atomics.notify(ctrl, CTRL.state);
      return;
    }
    if (cmd === CMD.suspend) {
      Atomics.store(ctrl, CTRL.state, STATE.suspended);
      Atomics.notify(ctrl, CTRL.state);
      while (Atomics.load(ctrl, CTRL.cmd) === CMD.suspend) Atomics.wait(ctrl, CTRL.cmd, CMD.suspend);
      // The driver may have changed the disk chains while the vCPU was parked (a snapshot): learn that before
      // any write. A resumed guest does not catch up on the writes it missed while stopped.
      disks.drain();
      const now = performance.now();
      mem.reset(now);
      disk.reset(now);
      Atomics.store(ctrl, CTRL.state, STATE.running);
      Atomics.notify(ctrl, CTRL.state);
      continue;
    }
    disks.drain();
    const now = performance.now();
    tick(now);
    const m = mem.due(now);
    for (let i = 0; i < m; i++) writeOne();
    mem.made(m);
    const d = disk.due(now);
    for (let i = 0; i < d; i++) writeDisk();
    disk.made(d);
    if (disks.merging) {
      disks.mergeStep();
      continue;
    }
    if (m === 0 && d === 0) {
      const later = performance.now();
      const waitMs = Math.max(0.2, Math.min(10, mem.waitMs(later), disk.waitMs(later)));
      Atomics.wait(ctrl, CTRL.cmd, CMD.run, waitMs);
    }
  }
}

run();
