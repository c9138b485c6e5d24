/**
 * One simulated VM: guest memory and its dirty bitmap in SharedArrayBuffers, a
 * worker thread as its vCPU, and machine state that the worker keeps current.
 */
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { VmInfo, VmRunState, VmSpec } from '../../../../shared/src/mod.js';
import { InternalError, InvalidArgumentError, PAGE_SIZE, isZeroPage } from '../../../../shared/src/mod.js';
import type { DriverVm, GuestPages, MachineStateBlob } from '../driver.js';
import { CMD, CTRL, DEVICE_FIELDS, MS, PATTERN_CODE, STATE, VCPU_FIELDS, type GuestBuffers, type GuestWorkerData } from './layout.js';
import { fillGuestMemory } from './content.js';
import { seedState } from './prng.js';

const HANDSHAKE_TIMEOUT_MS = 5_000;

function workerFor(data: GuestWorkerData): Worker {
  const here = import.meta.url;
  if (here.endsWith('.ts')) {
    // Running from sources under tsx: register tsx in the worker before loading the TypeScript entry.
    const entry = new URL('./guest-worker.ts', here).href;
    const api = import.meta.resolve('tsx/esm/api');
    const boot = `import { register } from ${JSON.stringify(api)}; register(); await import(${JSON.stringify(entry)});`;
    return new Worker(boot, { eval: true, workerData: data });
  }
  return new Worker(new URL('./guest-worker.js', here), { workerData: data });
}

export class SimVm implements DriverVm {
  readonly pageSize = PAGE_SIZE;
  readonly pageCount: number;
  private readonly buffers: GuestBuffers;
  private readonly ctrl: Int32Array;
  private readonly machine: Uint32Array;
  private readonly dirty: Int32Array;
  private worker: Worker | undefined;
  private workerError: Error | undefined;
  private _state: VmRunState = 'suspended';

  constructor(
    readonly id: string,
    readonly spec: VmSpec,
    readonly cloneOf: string,
    incoming: boolean,
  ) {
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
    if (!incoming) {
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

  async run(): Promise<void> {
    if (this.workerError) throw new InternalError(`vm ${this.id}: guest crashed: ${this.workerError.message}`);
    if (this._state === 'running') return;
    Atomics.store(this.ctrl, CTRL.cmd, CMD.run);
    Atomics.notify(this.ctrl, CTRL.cmd);
    if (!this.worker) this.startWorker();
    await this.waitState(STATE.running);
    this._state = 'running';
  }

  async suspend(): Promise<void> {
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
  }

  async stop(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    Atomics.store(this.ctrl, CTRL.cmd, CMD.stop);
    Atomics.notify(this.ctrl, CTRL.cmd);
    try {
      await this.waitState(STATE.stopped);
    } finally {
      this.worker = undefined;
      this._state = 'suspended';
      await w.terminate();
    }
  }

  private startWorker(): void {
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
    };
    const w = workerFor(data);
    w.on('error', (err) => {
      this.workerError = err;
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
      const r = Atomics.waitAsync(this.ctrl, CTRL.state, cur, Math.min(left, 50));
      if (r.async) await r.value;
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
    const pick = (fields: readonly (keyof typeof MS)[]) =>
      Buffer.from(JSON.stringify(Object.fromEntries(fields.map((f) => [f, this.machine[MS[f]]!]))));
    return { vcpu: pick(VCPU_FIELDS), devices: pick(DEVICE_FIELDS) };
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

  info(host: string): VmInfo {
    return { id: this.id, host, state: this._state, cloneOf: this.cloneOf, ...this.spec };
  }
}
