/**
 * SHA-256 of chunks on worker threads.
 *
 * Hashing is the largest CPU cost of an upload, a restore and of the
 * repository's checks (about 3.5 ms per 4 MiB chunk), and the main thread is
 * busy with gRPC. WebCrypto's digest runs on the thread pool but first copies
 * its input on the main thread and wipes the copy afterwards; here a buffer
 * backed by a SharedArrayBuffer is read by the worker in place, and any other
 * buffer is copied once into a pooled shared scratch buffer.
 *
 * Workers are referenced only while they have work, so an idle pool never
 * keeps a process alive. The worker is a few lines of plain JavaScript,
 * evaluated, so it runs the same from sources (tsx) and from dist/.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { InternalError } from '../errors.js';
import { SharedBufferPool } from './buffer-pool.js';
import { MAX_CHUNK_SIZE } from './types.js';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
parentPort.on('message', (m) => {
  const d = createHash('sha256').update(new Uint8Array(m.sab, m.offset, m.length)).digest();
  parentPort.postMessage({ id: m.id, digest: d });
});
`;

/** Below this a message round trip costs more than hashing on the spot. */
const INLINE_BYTES = 64 * 1024;

interface Job {
  resolve: (d: Buffer) => void;
  reject: (e: Error) => void;
  slot: Slot;
}

interface Slot {
  worker: Worker;
  pending: number;
}

/** SHA-256 over a few worker threads (at most 4; one per CPU). */
export class HashPool {
  private readonly slots: Slot[] = [];
  private readonly jobs = new Map<number, Job>();
  private nextId = 1;
  private readonly scratch = new SharedBufferPool(MAX_CHUNK_SIZE, 4);

  constructor(readonly workers: number = Math.max(1, Math.min(4, os.availableParallelism()))) {}

  private spawn(): Slot {
    const worker = new Worker(WORKER_SOURCE, { eval: true, name: 'doppel-sha256' });
    const slot: Slot = { worker, pending: 0 };
    worker.unref();
    worker.on('message', (m: { id: number; digest: Uint8Array }) => {
      const job = this.jobs.get(m.id);
      if (!job) return;
      this.jobs.delete(m.id);
      if (--slot.pending === 0) worker.unref();
      job.resolve(Buffer.from(m.digest.buffer, m.digest.byteOffset, m.digest.byteLength));
    });
    const broken = (err: Error) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      for (const [id, job] of this.jobs) {
        if (job.slot !== slot) continue;
        this.jobs.delete(id);
        job.reject(new InternalError(`hash worker failed: ${err.message}`, { cause: err }));
      }
    };
    worker.on('error', broken);
    worker.on('exit', (code) => broken(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  private pick(): Slot {
    let best: Slot | undefined;
    for (const s of this.slots) if (!best || s.pending < best.pending) best = s;
    if (!best || (best.pending > 0 && this.slots.length < this.workers)) best = this.spawn();
    return best;
  }

  private post(sab: SharedArrayBuffer, offset: number, length: number): Promise<Buffer> {
    const slot = this.pick();
    const id = this.nextId++;
    return new Promise<Buffer>((resolve, reject) => {
      this.jobs.set(id, { resolve, reject, slot });
      if (slot.pending++ === 0) slot.worker.ref();
      slot.worker.postMessage({ id, sab, offset, length });
    });
  }

  /**
   * The SHA-256 of `data`. A SharedArrayBuffer-backed `data` must not change
   * until the promise settles; any other is copied first and may change at once.
   */
  async digest(data: Uint8Array): Promise<Buffer> {
    if (data.length < INLINE_BYTES) return createHash('sha256').update(data).digest();
    if (data.buffer instanceof SharedArrayBuffer) return this.post(data.buffer, data.byteOffset, data.byteLength);
    if (data.length > MAX_CHUNK_SIZE) return createHash('sha256').update(data).digest();
    const s = await this.scratch.acquire();
    try {
      s.set(data);
      return await this.post(s.buffer as SharedArrayBuffer, s.byteOffset, data.length);
    } finally {
      this.scratch.release(s);
    }
  }

  /** Stops the workers (pending digests fail). */
  async close(): Promise<void> {
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}

let shared: HashPool | undefined;

/** The process-wide hash pool. */
export function sharedHashPool(): HashPool {
  shared ??= new HashPool();
  return shared;
}
