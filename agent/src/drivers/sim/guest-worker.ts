/**
 * The simulated guest's vCPU: a worker thread that writes guest memory at a set
 * rate and pattern, and sets the page's dirty bit after each write, as KVM's
 * dirty log does. It also writes its disks (4 KiB writes, synchronous, through
 * the layer chain) and sets a changed-block bit after each. It parks on a
 * suspend request and acknowledges it, so the driver knows the vCPU really
 * stopped; right after a resume, before writing again, it takes the driver's
 * messages (a new disk chain after a snapshot).
 *
 * A hot clone freezes it without stopping it (see hot-buffer.ts): in one step
 * between two writes it takes the disks' new overlays, starts buffering its
 * memory writes and copies its vCPU state; on unfreeze the driver merges the
 * buffer back while the guest runs on, and the guest ends the freeze once the
 * merge has caught up with it.
 */
import { workerData } from 'node:worker_threads';
import { BYPASS_MAX_OUTSTANDING, CMD, CTRL, HOT_CMD, HOT_STATE, MS, STATE, type BypassWrite, type GuestWorkerData } from './layout.js';
import { TOKEN_BYTES, encodeToken } from '../../../../shared/src/consistency-token.js';
import { HDR, LINE_WORDS, STAT, WriteBuffer, epochMs } from './hot-buffer.js';
import { xoshiro128ss } from './prng.js';
import { GuestDisks } from './guest-disks.js';
import { DiskWorkload, nextUnit } from './guest-workload.js';

const data = workerData as GuestWorkerData;
const { pageCount, pageSize, dirtyRate, pattern, hotBase, hotPages } = data;
const ctrl = new Int32Array(data.buffers.ctrl);
const disks = new GuestDisks(data.disks, () => Atomics.load(ctrl, CTRL.hotId));
const diskRate = disks.totalBlocks > 0 ? data.diskWriteRate : 0;
const mem32 = new Uint32Array(data.buffers.memory);
const dirty = new Int32Array(data.buffers.dirty);
const ms = new Uint32Array(data.buffers.machine);
const diskLoad = new DiskWorkload(ms, pattern, disks.totalBlocks, disks.blockSize, data.seed);
const wordsPerPage = pageSize >>> 2;
const linesPerPage = wordsPerPage / LINE_WORDS;
/** While memory is frozen, the buffer its writes go to; undefined when they go to memory. */
let frozen: WriteBuffer | undefined;
/** The guest found the buffer full at this epoch time and waits for the merge; 0 when not. */
let fullSince = 0;
const lineBuf = new Uint32Array(LINE_WORDS);
/** At most this many writes between two looks at the control word. */
const BURST = 256;
/** Disk writes are slower (a system call each, a copy-up at worst): fewer per look at the control word. */
const DISK_BURST = 64;

function nextPage(): number {
  return nextUnit(ms, pattern, pageCount, hotBase, hotPages, MS.cursor);
}

function writeDisk(): void {
  const next = diskLoad.next();
  const { block } = next;
  // The consistency token's sector is the token's alone (a guest keeps its own data elsewhere).
  const offset = data.tokenRate > 0 && block === tokenBlock && next.offset === tokenOffset ? next.offset - TOKEN_BYTES : next.offset;
  const n = ms[MS.diskWritesLo]! + 1;
  disks.write(block, offset, diskLoad.data(n, block));
  ms[MS.diskWritesLo] = n >>> 0;
  if (n >>> 0 === 0) ms[MS.diskWritesHi] = (ms[MS.diskWritesHi]! + 1) >>> 0;
  ms[MS.blkWrites] = (ms[MS.blkWrites]! + 1) >>> 0;
}

// ---- consistency tokens and bypass volumes (seed 001) ----

const bypass = data.bypass;
const outstanding = bypass ? new Int32Array(bypass.outstanding) : undefined;
const tokenBuf = Buffer.alloc(TOKEN_BYTES);
/** The token goes to the last 4 KiB of the first disk (global block of that disk's last block, and the offset in it). */
const tokenBlock = disks.totalBlocks > 0 ? (data.disks.blockCounts[0] ?? 0) - 1 : -1;
const tokenOffset = disks.blockSize - TOKEN_BYTES;
const bypassRecord = Buffer.from('doppel guest write straight to the array, past the hypervisor. '.repeat(70).slice(0, TOKEN_BYTES), 'latin1');

/** The array has room for `n` more of the guest's bypass writes (its queue is bounded). */
function bypassRoom(n: number): boolean {
  return !outstanding || Atomics.load(outstanding, 0) + n <= BYPASS_MAX_OUTSTANDING;
}

function postBypass(volume: number, offset: number, bytes: Buffer): void {
  if (!bypass || !outstanding) return;
  Atomics.add(outstanding, 0, 1);
  const msg: BypassWrite = { volume, offset, data: new Uint8Array(bytes) };
  bypass.port.postMessage(msg);
}

/** One token step: the image disk and the bypass volume get the same number, in this one step. */
function tokenStep(): void {
  const seq = ms[MS.tokenSeq]! + 1;
  encodeToken(seq, tokenBuf);
  if (tokenBlock >= 0) disks.write(tokenBlock, tokenOffset, tokenBuf);
  postBypass(0, 0, tokenBuf);
  ms[MS.tokenSeq] = seq >>> 0;
}

/** A 4 KiB write to a bypass volume (never its first 4 KiB: the token's). */
function bypassWrite(): void {
  if (!bypass || bypass.sizes.length === 0) return;
  const r = xoshiro128ss(ms, MS.prng0);
  const volume = r % bypass.sizes.length;
  const sectors = Math.floor(bypass.sizes[volume]! / TOKEN_BYTES);
  if (sectors < 2) return;
  const offset = (1 + (xoshiro128ss(ms, MS.prng0) % (sectors - 1))) * TOKEN_BYTES;
  bypassRecord.writeUInt32LE(r, 0);
  postBypass(volume, offset, bypassRecord);
}

function writeOne(): void {
  const page = nextPage();
  const r = xoshiro128ss(ms, MS.prng0);
  const line = r % linesPerPage;
  const base = page * wordsPerPage + line * LINE_WORDS;
  // Keep compressible lines compressible: a counter, the page number, then a short repeating record.
  const n = ms[MS.writesLo]! + 1;
  lineBuf[0] = n;
  lineBuf[1] = page;
  for (let i = 2; i < LINE_WORDS; i++) lineBuf[i] = (r + (i & 3)) >>> 0;
  if (frozen) {
    // Frozen memory: the write goes to the buffer (the caller made sure it has room).
    frozen.append(base / LINE_WORDS, lineBuf, n >>> 0);
  } else {
    mem32.set(lineBuf, base);
    // The dirty bit goes up after the data: a copier that cleared the bit before copying sees it again.
    Atomics.or(dirty, page >>> 5, 1 << (page & 31));
  }
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

/**
 * The freeze, slowest level first, all between two writes: the disks (their caches are write-through, so taking
 * the new overlays is the whole of it; device state is in the machine words), then RAM (writes go to the
 * buffer), then the vCPU (its registers and the device words are copied as they stand).
 */
function freeze(): void {
  const t0 = epochMs();
  const id = Atomics.load(ctrl, CTRL.hotId);
  let hot = disks.takeHot(id);
  // The driver posts the message before it sets the command, so it is there; wait a moment if not yet visible.
  for (let i = 0; !hot && i < 100; i++) {
    Atomics.wait(ctrl, CTRL.hotState, Atomics.load(ctrl, CTRL.hotState), 1);
    hot = disks.takeHot(id);
  }
  if (!hot) {
    // Never crash the guest for it: say so and run on unfrozen; the driver ends the attempt.
    Atomics.store(ctrl, CTRL.hotCmd, HOT_CMD.none);
    Atomics.store(ctrl, CTRL.hotState, HOT_STATE.failed);
    Atomics.notify(ctrl, CTRL.hotState);
    return;
  }
  const buf = new WriteBuffer(hot.buffers);
  buf.stats[STAT.ioFrozenAt] = epochMs();
  frozen = buf;
  buf.stats[STAT.ramFrozenAt] = epochMs();
  new Uint32Array(hot.buffers.frozenMachine).set(ms);
  const t1 = epochMs();
  buf.stats[STAT.vcpuFrozenAt] = t1;
  buf.addStall(t1 - t0);
  Atomics.store(ctrl, CTRL.hotCmd, HOT_CMD.none);
  Atomics.store(ctrl, CTRL.hotState, HOT_STATE.frozen);
  Atomics.notify(ctrl, CTRL.hotState);
}

/** The freeze ends: the buffer is empty, so the guest's next write goes to memory again. */
function endFreeze(buf: WriteBuffer): void {
  const t = epochMs();
  if (fullSince > 0) {
    // The guest waited on a full buffer until the merge emptied it: one stall.
    buf.addStall(t - fullSince);
    fullSince = 0;
  }
  buf.stats[STAT.mergeEndAt] = t;
  frozen = undefined;
  Atomics.store(ctrl, CTRL.hotCmd, HOT_CMD.none);
  Atomics.store(ctrl, CTRL.hotState, HOT_STATE.live);
  Atomics.notify(ctrl, CTRL.hotState);
}

/**
 * The hot-clone side of one loop turn. Returns false when the guest may not write now: its memory is frozen and
 * the buffer is full, so it waits (a stall) until the merge has emptied it.
 *
 * The driver merges the buffer on its own thread while the guest runs on, still buffering; the guest ends the
 * freeze itself the first time it finds everything it appended merged. It is the buffer's only appender, so
 * nothing can be left behind, and no write of its own can overtake an older buffered one to the same line.
 */
function hotTurn(): boolean {
  const cmd = Atomics.load(ctrl, CTRL.hotCmd);
  if (!frozen) {
    // Commit to the request, unless the driver withdrew it first.
    if (cmd === HOT_CMD.freeze && Atomics.compareExchange(ctrl, CTRL.hotCmd, HOT_CMD.freeze, HOT_CMD.freezing) === HOT_CMD.freeze) freeze();
    return true;
  }
  if (cmd === HOT_CMD.unfreeze) {
    if (Atomics.load(ctrl, CTRL.hotState) !== HOT_STATE.merging) {
      Atomics.store(ctrl, CTRL.hotState, HOT_STATE.merging);
      Atomics.notify(ctrl, CTRL.hotState);
    }
    if (frozen.drained) {
      endFreeze(frozen);
      return true;
    }
  }
  if (frozen.full) {
    if (fullSince === 0) {
      fullSince = epochMs();
      Atomics.add(frozen.hdr, HDR.fullWaits, 1);
    }
    return false;
  }
  return true;
}

/** Parks the guest's writes for good (a stop) only after its buffered writes are in memory: nothing is lost. */
function mergeAllBeforeStop(): void {
  if (!frozen) return;
  frozen.mergeSome(mem32, dirty, wordsPerPage, Infinity);
  endFreeze(frozen);
}

function run(): void {
  const mem = new Pace(dirtyRate, BURST);
  const disk = new Pace(diskRate, DISK_BURST);
  const tokens = new Pace(data.tokenRate, DISK_BURST);
  const bypassLoad = new Pace(bypass?.writeRate ?? 0, DISK_BURST);
  Atomics.store(ctrl, CTRL.state, STATE.running);
  Atomics.notify(ctrl, CTRL.state);
  for (;;) {
    const cmd = Atomics.load(ctrl, CTRL.cmd);
    if (cmd === CMD.stop) {
      mergeAllBeforeStop();
      disks.close();
      Atomics.store(ctrl, CTRL.state, STATE.stopped);
      Atomics.notify(ctrl, CTRL.state);
      return;
    }
    if (cmd === CMD.suspend) {
      Atomics.store(ctrl, CTRL.state, STATE.suspended);
      Atomics.notify(ctrl, CTRL.state);
      while (Atomics.load(ctrl, CTRL.cmd) === CMD.suspend) Atomics.wait(ctrl, CTRL.cmd, CMD.suspend);
      // A stop from parked: no acknowledgement of running on the way.
      if (Atomics.load(ctrl, CTRL.cmd) === CMD.stop) continue;
      // The driver may have changed the disk chains while the vCPU was parked (a snapshot): learn that before
      // any write. A resumed guest does not catch up on the writes it missed while stopped. The driver may
      // also have merged a frozen memory's buffer itself while the guest was parked.
      disks.drain();
      if (frozen && Atomics.load(ctrl, CTRL.hotState) === HOT_STATE.live) {
        // A wait on a full buffer ended when the driver merged it: count it.
        if (fullSince > 0) frozen.addStall(epochMs() - fullSince);
        frozen = undefined;
        fullSince = 0;
      }
      const now = performance.now();
      mem.reset(now);
      disk.reset(now);
      tokens.reset(now);
      bypassLoad.reset(now);
      Atomics.store(ctrl, CTRL.state, STATE.running);
      Atomics.notify(ctrl, CTRL.state);
      continue;
    }
    disks.drain();
    if (!hotTurn()) {
      // Frozen with a full buffer: no memory write can be made until the merge has emptied it.
      Atomics.wait(frozen!.hdr, HDR.merged, Atomics.load(frozen!.hdr, HDR.merged), 1);
      continue;
    }
    const now = performance.now();
    tick(now);
    const due = mem.due(now);
    let m = 0;
    // A frozen memory's buffer may fill in the middle of a burst: the rest waits for the merge.
    while (m < due && !frozen?.full) {
      writeOne();
      m++;
    }
    mem.made(m);
    const d = disk.due(now);
    for (let i = 0; i < d; i++) writeDisk();
    disk.made(d);
    // Token steps and bypass writes wait while the array's queue is full (as an initiator's would).
    let tk = 0;
    for (const due = tokens.due(now); tk < due && bypassRoom(1); tk++) tokenStep();
    tokens.made(tk);
    let bw = 0;
    for (const due = bypassLoad.due(now); bw < due && bypassRoom(1); bw++) bypassWrite();
    bypassLoad.made(bw);
    if (disks.merging) {
      disks.mergeStep();
      continue;
    }
    // During an unfreeze the guest looks often, to end the freeze soon after the merge catches up.
    if (m === 0 && d === 0 && tk === 0 && bw === 0) {
      const later = performance.now();
      const waitMs = Math.max(0.2, Math.min(10, mem.waitMs(later), disk.waitMs(later), tokens.waitMs(later), bypassLoad.waitMs(later)));
      if (frozen && Atomics.load(ctrl, CTRL.hotCmd) === HOT_CMD.unfreeze) {
        // The merge runs on the driver's thread: look again as soon as it moves, to end the freeze soon after.
        Atomics.wait(frozen.hdr, HDR.merged, Atomics.load(frozen.hdr, HDR.merged), Math.min(waitMs, 1));
      } else {
        Atomics.wait(ctrl, CTRL.cmd, CMD.run, waitMs);
      }
    }
  }
}

run();
