/**
 * The source side of a disk copy: streams the allocated blocks of a
 * point-in-time disk snapshot to a clone (holes stay holes), or, when both hosts
 * share a datastore, only names the frozen layers the clone overlays. The
 * source's changed-block tracking goes along in both cases.
 */
import { once } from 'node:events';
import type { ClientWritableStream } from '@grpc/grpc-js';
import { AbortedError, DISK_BATCH_BLOCKS, PageBatchEncoder, fromServiceError, streamTokenMetadata } from '../../../shared/src/mod.js';
import type { DiskFrame } from '../../../shared/src/gen/doppel/v1/DiskFrame.js';
import type { DiskCopySummary__Output } from '../../../shared/src/gen/doppel/v1/DiskCopySummary.js';
import type { DiskSnapshot } from '../drivers/driver.js';
import type { DataPlaneClient } from '../dataplane/client.js';

export interface DiskCopyOptions {
  jobId: string;
  /** The coordinator's token for this disk stream. */
  token: string;
  targetHost: string;
  targetVmId: string;
  /** Overlay the snapshot's shared chains instead of copying blocks. */
  linked: boolean;
  deadlineMs: number;
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

export interface DiskCopyStats {
  blocks: number;
  bytesRaw: number;
  bytesWire: number;
  linked: boolean;
  ms: number;
}

/** A client stream that waits for `drain` when grpc-js asks and ends with the server's reply. */
class DiskStream {
  private readonly call: ClientWritableStream<DiskFrame>;
  private failure: Error | undefined;
  private readonly reply: Promise<DiskCopySummary__Output>;

  constructor(client: DataPlaneClient, target: string, deadlineMs: number, token: string) {
    let call!: ClientWritableStream<DiskFrame>;
    this.reply = new Promise((resolve, reject) => {
      call = client.streamDisk(streamTokenMetadata(token), { deadline: Date.now() + deadlineMs }, (err, res) => {
        if (err || !res) {
          this.failure ??= fromServiceError(err, `disk copy to ${target}`);
          reject(this.failure);
        } else resolve(res);
      });
    });
    // Failures surface through write() or end(); the reply promise must not be left unhandled meanwhile.
    this.reply.catch(() => undefined);
    this.call = call;
  }

  async write(frame: DiskFrame): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.call.write(frame)) return;
    // Wait for drain, or for the call to fail (the target's error ends the reply first).
    const ac = new AbortController();
    try {
      await Promise.race([once(this.call, 'drain', { signal: ac.signal }), this.reply.then(() => undefined)]);
    } finally {
      ac.abort();
    }
    if (this.failure) throw this.failure;
  }

  end(): Promise<DiskCopySummary__Output> {
    this.call.end();
    return this.reply;
  }

  cancel(reason: string): void {
    this.failure ??= new AbortedError(reason);
    this.call.cancel();
  }
}

export async function copyDisks(snapshot: DiskSnapshot, client: DataPlaneClient, opts: DiskCopyOptions): Promise<DiskCopyStats> {
  const t0 = performance.now();
  const stream = new DiskStream(client, opts.targetHost, opts.deadlineMs, opts.token);
  const onAbort = () => stream.cancel(`disk copy cancelled: ${String(opts.signal?.reason ?? 'aborted')}`);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let bytesRaw = 0;
  let bytesWire = 0;
  let blocks = 0;
  try {
    await stream.write({
      open: {
        jobId: opts.jobId,
        targetVmId: opts.targetVmId,
        disks: snapshot.disks.map((d) => ({ name: d.name, sizeBytes: d.sizeBytes, blockSize: d.blockSize })),
        linked: opts.linked ? snapshot.chains.map((layers) => ({ layers })) : [],
      },
    });
    if (!opts.linked) {
      const total = snapshot.disks.reduce((n, d) => n + d.blockCount, 0);
      let scanned = 0;
      for (const [disk, view] of snapshot.disks.entries()) {
        const enc = new PageBatchEncoder({ pageSize: view.blockSize, maxPages: DISK_BATCH_BLOCKS });
        const buf = Buffer.allocUnsafe(view.blockSize * DISK_BATCH_BLOCKS);
        const flush = async () => {
          if (enc.size === 0) return;
          await stream.write({ blocks: { disk, batch: enc.finish(0) } });
        };
        let b = 0;
        while (b < view.blockCount) {
          if (!view.isAllocated(b)) {
            b++;
            continue;
          }
          // A run of allocated blocks, read in one call, up to a batch.
          let n = 1;
          while (n < DISK_BATCH_BLOCKS - enc.size && b + n < view.blockCount && view.isAllocated(b + n)) n++;
          await view.read(b, n, buf);
          for (let k = 0; k < n; k++) enc.add(b + k, buf.subarray(k * view.blockSize, (k + 1) * view.blockSize));
          blocks += n;
          b += n;
          if (enc.full) await flush();
          opts.onProgress?.(scanned + b, total);
        }
        await flush();
        scanned += view.blockCount;
        bytesRaw += enc.bytesRaw;
        bytesWire += enc.bytesWire;
      }
    }
    for (const [disk, c] of snapshot.changes.entries()) {
      await stream.write({
        changes: c
          ? { disk, tracked: true, since: c.since, bitmap: Buffer.from(c.bitmap.buffer, c.bitmap.byteOffset, c.bitmap.byteLength) }
          : { disk, tracked: false },
      });
    }
    // A snapshot taken without a checkpoint has no `changes`: the clone then starts with tracking lost.
    for (let disk = snapshot.changes.length; disk < snapshot.disks.length; disk++) await stream.write({ changes: { disk, tracked: false } });
    const summary = await stream.end();
    return { blocks: Number(summary.blocksWritten), bytesRaw, bytesWire, linked: summary.linked, ms: performance.now() - t0 };
  } catch (err) {
    stream.cancel('disk copy failed');
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

