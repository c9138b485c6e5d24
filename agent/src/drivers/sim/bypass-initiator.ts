/**
 * The guest's own path to its bypass volumes (seed 001): what an iSCSI
 * initiator inside the guest, or a pass-through LUN, is to a real VM. The guest
 * worker posts its writes here; they go to the storage array in the order the
 * guest made them, past the hypervisor's disks (no layer chain, no change
 * tracking, no snapshot of the driver sees them). The queue is bounded: the
 * guest waits when BYPASS_MAX_OUTSTANDING writes are unacknowledged.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvalidArgumentError, NotFoundError, UnavailableError, type Logger } from '../../../../shared/src/mod.js';
import type { BypassStore } from '../driver.js';
import type { BypassWrite, WorkerBypassData } from './layout.js';

/** How often a write the array refused is tried again (the guest's I/O waits meanwhile, as on a real path). */
const RETRY_MS = 500;

export class BypassInitiator {
  private port: MessagePort | undefined;
  private readonly queue: BypassWrite[] = [];
  private pumping: Promise<void> | undefined;
  private lastError: Error | undefined;
  private closed = false;
  readonly outstanding = new SharedArrayBuffer(4);
  private readonly count = new Int32Array(this.outstanding);

  constructor(
    private readonly store: BypassStore,
    /** Array volume names, in spec order. */
    readonly volumes: readonly string[],
    private readonly sizes: readonly number[],
    private readonly log?: Logger,
  ) {}

  /** What a new guest worker needs; a new channel each time (the old worker is gone). */
  workerData(writeRate: number): { data: WorkerBypassData; transfer: MessagePort } {
    this.port?.close();
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m: BypassWrite) => this.take(m));
    port1.unref();
    this.port = port1;
    return { data: { sizes: [...this.sizes], writeRate, port: port2, outstanding: this.outstanding }, transfer: port2 };
  }

  private take(m: BypassWrite): void {
    this.queue.push(m);
    this.pumping ??= this.pump().finally(() => (this.pumping = undefined));
  }

  private async pump(): Promise<void> {
    while (this.queue.length > 0 && !this.closed) {
      const w = this.queue[0]!;
      const volume = this.volumes[w.volume];
      if (volume === undefined) {
        this.queue.shift();
        Atomics.sub(this.count, 0, 1);
        continue;
      }
      try {
        await this.store.write(volume, w.offset, Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength));
        this.queue.shift();
        this.lastError = undefined;
        Atomics.sub(this.count, 0, 1);
        Atomics.notify(this.count, 0);
      } catch (err) {
        if (err instanceof InvalidArgumentError || err instanceof NotFoundError) {
          // The array will never take it (the volume is gone, or the write is malformed): a guest I/O error.
          this.log?.error({ err, volume }, 'the storage array refused a bypass write for good; dropped');
          this.queue.shift();
          Atomics.sub(this.count, 0, 1);
          Atomics.notify(this.count, 0);
          continue;
        }
        if (!this.lastError) this.log?.warn({ err, volume }, 'the storage array does not take the guest\'s bypass writes; retrying');
        this.lastError = err as Error;
        await sleep(RETRY_MS);
      }
    }
  }

  /**
   * Resolves once every write the guest has posted is on the array (call it with the guest parked, or it chases a
   * moving target). A write the array keeps refusing ends it with UnavailableError after `timeoutMs`.
   */
  async flush(timeoutMs = 10_000): Promise<void> {
    if (this.port) {
      for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) this.take(m.message as BypassWrite);
    }
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(this.count, 0) > 0) {
      if (Date.now() > deadline) {
        throw new UnavailableError(
          `the storage array did not take the guest's bypass writes within ${timeoutMs} ms (${Atomics.load(this.count, 0)} pending)` +
            (this.lastError ? `: ${this.lastError.message}` : ''),
          this.lastError ? { cause: this.lastError } : undefined,
        );
      }
      if (this.pumping) await Promise.race([this.pumping, sleep(50)]);
      else await sleep(5);
    }
  }

  close(): void {
    this.closed = true;
    this.port?.close();
    this.port = undefined;
  }
}
