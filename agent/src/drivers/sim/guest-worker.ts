/**
 * The simulated guest's vCPU: a worker thread that writes guest memory at a set
 * rate and pattern, and sets the page's dirty bit after each write, as KVM's
 * dirty log does. It parks on a suspend request and acknowledges it, so the
 * driver knows the vCPU really stopped.
 */
import { workerData } from 'node:worker_threads';
import { CMD, CTRL, MS, STATE, type GuestWorkerData } from './layout.js';
import { xoshiro128ss } from './prng.js';

const data = workerData as GuestWorkerData;
const { pageCount, pageSize, dirtyRate, pattern, hotBase, hotPages } = data;
const mem32 = new Uint32Array(data.buffers.memory);
const dirty = new Int32Array(data.buffers.dirty);
const ctrl = new Int32Array(data.buffers.ctrl);
const ms = new Uint32Array(data.buffers.machine);
const wordsPerPage = pageSize >>> 2;
/** A write touches a 64-byte line: 16 words. */
const LINE_WORDS = 16;
const linesPerPage = wordsPerPage / LINE_WORDS;
/** At most this many writes between two looks at the control word. */
const BURST = 256;

function nextPage(): number {
  switch (pattern) {
    case 1: {
      // Hot set: 10% of memory takes 90% of the writes.
      const r = xoshiro128ss(ms, MS.prng0);
      if (r % 10 !== 0) return hotBase + (xoshiro128ss(ms, MS.prng0) % hotPages);
      return xoshiro128ss(ms, MS.prng0) % pageCount;
    }
    case 2: {
      const p = ms[MS.cursor]!;
      ms[MS.cursor] = (p + 1) % pageCount;
      return p;
    }
    default:
      return xoshiro128ss(ms, MS.prng0) % pageCount;
  }
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
  if ((r & 7) === 0) ms[MS.nicTx] = (ms[MS.nicTx]! + 1) >>> 0;
  if ((r & 15) === 1) ms[MS.nicRx] = (ms[MS.nicRx]! + 1) >>> 0;
  if ((r & 31) === 2) ms[MS.blkWrites] = (ms[MS.blkWrites]! + 1) >>> 0;
}

function tick(now: number): void {
  const tsc = Math.floor(now * 1000);
  ms[MS.tscLo] = tsc >>> 0;
  ms[MS.tscHi] = Math.floor(tsc / 2 ** 32) >>> 0;
  ms[MS.timerTicks] = (ms[MS.timerTicks]! + 1) >>> 0;
}

function run(): void {
  let t0 = performance.now();
  let written = 0;
  Atomics.store(ctrl, CTRL.state, STATE.running);
  Atomics.notify(ctrl, CTRL.state);
  for (;;) {
    const cmd = Atomics.load(ctrl, CTRL.cmd);
    if (cmd === CMD.stop) {
      Atomics.store(ctrl, CTRL.state, STATE.stopped);
      Atomics.notify(ctrl, CTRL.state);
      return;
    }
    if (cmd === CMD.suspend) {
      Atomics.store(ctrl, CTRL.state, STATE.suspended);
      Atomics.notify(ctrl, CTRL.state);
      while (Atomics.load(ctrl, CTRL.cmd) === CMD.suspend) Atomics.wait(ctrl, CTRL.cmd, CMD.suspend);
      // A resumed guest does not catch up on the writes it missed while stopped.
      t0 = performance.now();
      written = 0;
      Atomics.store(ctrl, CTRL.state, STATE.running);
      Atomics.notify(ctrl, CTRL.state);
      continue;
    }
    const now = performance.now();
    tick(now);
    if (dirtyRate <= 0) {
      Atomics.wait(ctrl, CTRL.cmd, CMD.run, 10);
      continue;
    }
    const due = Math.floor(((now - t0) * dirtyRate) / 1000) - written;
    if (due <= 0) {
      const waitMs = Math.max(0.2, Math.min(10, (1 - due) * (1000 / dirtyRate)));
      Atomics.wait(ctrl, CTRL.cmd, CMD.run, waitMs);
      continue;
    }
    // Never fall more than 50 ms behind: a guest that was descheduled does not burst forever.
    if (due > dirtyRate / 20 + BURST) {
      written += due - BURST;
    }
    const n = Math.min(due, BURST);
    for (let i = 0; i < n; i++) writeOne();
    written += n;
  }
}

run();
