/**
 * A bounded set of reusable chunk buffers.
 *
 * Reuse matters at 4 MiB per chunk: a fresh buffer per chunk costs page faults
 * and, worse, V8 counts it as external memory and runs full mark-compact
 * collections to reclaim it (a fifth of an upload's CPU in a profile, before
 * pooling). Buffers backed by a SharedArrayBuffer (the default) let the hash
 * workers read them in place; plain ones copy faster (V8 copies shared memory
 * with relaxed atomics, at about half of memcpy's speed), so buffers that are
 * only copied from, like outgoing compressed chunks, are better plain.
 */
export class SharedBufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiters: { resolve: (b: Buffer) => void; reject: (e: Error) => void }[] = [];
  private created = 0;
  private failure: Error | undefined;

  constructor(
    readonly size: number,
    readonly max: number,
    readonly shared: boolean = true,
  ) {}

  /** A buffer of `size` bytes (old contents); waits while `max` are out. */
  acquire(): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    const b = this.free.pop();
    if (b) return Promise.resolve(b);
    if (this.created < this.max) {
      this.created++;
      return Promise.resolve(this.shared ? Buffer.from(new SharedArrayBuffer(this.size)) : Buffer.allocUnsafeSlow(this.size));
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** A buffer if one is free (or may still be made) right now, else undefined; never waits. */
  tryAcquire(): Buffer | undefined {
    if (this.failure) throw this.failure;
    const b = this.free.pop();
    if (b) return b;
    if (this.created < this.max) {
      this.created++;
      return this.shared ? Buffer.from(new SharedArrayBuffer(this.size)) : Buffer.allocUnsafeSlow(this.size);
    }
    return undefined;
  }

  /** Gives a buffer from `acquire` back (the caller no longer touches it). */
  release(b: Buffer): void {
    const w = this.waiters.shift();
    if (w) w.resolve(b);
    else this.free.push(b);
  }

  /** Fails every waiting and future `acquire` (a pipeline that stopped). */
  fail(err: Error): void {
    this.failure ??= err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }
}
