/**
 * The source side of a live clone by iterative pre-copy (seed 000, memory half):
 *
 *  1. round 0 sends every page while the VM runs;
 *  2. each later round sends the pages dirtied since they were last sent, clearing
 *     each dirty bit before the page is copied;
 *  3. rounds stop when the dirty count falls below the threshold, or by the
 *     stop rule (see `stopReason`);
 *  4. the VM is suspended, the remaining dirty pages and the vCPU/device state
 *     are sent, and once the target has acknowledged them the VM is resumed.
 *
 * The VM is resumed on every path out of the suspended window, failures included.
 */
import { randomBytes } from 'node:crypto';
import { PageBatchEncoder, stateCrc, stopReason, type CloneStats, type Logger } from '../../../shared/src/mod.js';
import type { DriverVm, GuestPages } from '../drivers/driver.js';
import { PageStream, type DataPlaneClient } from '../dataplane/client.js';
import { Pacer } from './pacer.js';

export type Fault = '' | 'corrupt-frame' | 'corrupt-final-frame' | 'oversized-frame';
export const FAULTS: readonly Fault[] = ['', 'corrupt-frame', 'corrupt-final-frame', 'oversized-frame'];

export interface PrecopyOptions {
  jobId: string;
  /** The coordinator's token for this page stream. */
  token: string;
  targetHost: string;
  targetVmId: string;
  thresholdPages: number;
  maxRounds: number;
  verify: boolean;
  fault: Fault;
  /** Cap on raw page bytes per second (0: none), as QEMU's max-bandwidth. */
  maxBandwidthBytesPerS: number;
  /** Whole-stream deadline. */
  deadlineMs: number;
  log: Logger;
  /** Aborting cancels the clone at once: the stream is cancelled and the source resumes. */
  signal?: AbortSignal;
  /** The suspended window may last at most this long before the clone is abandoned and the source resumed. */
  switchoverTimeoutMs: number;
  onRound?: (r: { round: number; pages: number; bytesRaw: number; bytesWire: number; ms: number }) => void;
  onSwitchover?: (s: { finalPages: number; downtimeMs: number }) => void;
  /**
   * Runs in the suspended window, right after the guest stopped: where the disks are made point-in-time
   * (a snapshot is an O(1) freeze, so it barely adds to the downtime, which includes it).
   */
  onSuspended?: () => Promise<void>;
}

export async function runPrecopy(vm: DriverVm, client: DataPlaneClient, opts: PrecopyOptions): Promise<CloneStats> {
  const { log } = opts;
  const pages = vm.pages();
  const enc = new PageBatchEncoder({ pageSize: pages.pageSize });
  const stream = new PageStream(client, opts.targetHost, opts.deadlineMs, opts.token);
  const t0 = performance.now();
  const pacer = new Pacer(opts.maxBandwidthBytesPerS);
  let corruptPending = opts.fault === 'corrupt-frame';

  // Cancelling the stream rejects whatever the sender waits on (drain, an ack, the summary).
  const onAbort = () => stream.cancel(`clone cancelled: ${String(opts.signal?.reason ?? 'aborted')}`);
  if (opts.signal?.aborted) onAbort();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let switchoverTimer: NodeJS.Timeout | undefined;
  const wasRunning = vm.state === 'running';

  const flush = async (round: number) => {
    if (enc.size === 0) return;
    const batch = enc.finish(round);
    if (corruptPending) {
      corruptPending = false;
      const data = Buffer.from(batch.data as Buffer);
      const mid = data.length >> 1;
      data[mid] = (data[mid] ?? 0) ^ 0xff;
      batch.data = data;
    }
    await stream.write({ batch });
    await pacer.pace(enc.bytesRaw);
  };

  const sendRound = async (round: number, all: boolean): Promise<number> => {
    const sent = all ? await sendAll(pages, enc, round, flush) : await sendDirty(pages, enc, round, flush);
    await flush(round);
    await stream.write({ roundEnd: { round, pages: sent } });
    return sent;
  };

  let suspended = false;
  try {
    await stream.write({
      open: { jobId: opts.jobId, targetVmId: opts.targetVmId, pageSize: pages.pageSize, pageCount: pages.pageCount },
    });
    if (opts.fault === 'oversized-frame') {
      await stream.write({ batch: { round: 0, dataPages: [0], data: randomBytes(6 * 1024 * 1024), crc32: 0 } });
    }

    // Pre-copy rounds while the VM runs.
    const perRound: number[] = [];
    pages.clearDirtyLog();
    let round = 0;
    let reason = '';
    let round0BytesPerS = 0;
    for (;;) {
      const r0 = performance.now();
      const raw0 = enc.bytesRaw;
      const wire0 = enc.bytesWire;
      const sent = await sendRound(round, round === 0);
      // The round counts once the target has applied it: the dirty set is judged, and the source
      // suspended, only with nothing left in flight, so the suspended window holds just the final pages.
      await stream.acked(round);
      perRound.push(sent);
      const ms = performance.now() - r0;
      if (round === 0) round0BytesPerS = ((enc.bytesRaw - raw0) * 1000) / ms;
      opts.onRound?.({ round, pages: sent, bytesRaw: enc.bytesRaw - raw0, bytesWire: enc.bytesWire - wire0, ms });
      reason = stopReason(perRound, pages.countDirty(), opts.thresholdPages, opts.maxRounds);
      if (reason) break;
      round++;
    }

    // Switchover: the suspended window. A disk merge left by an earlier snapshot finishes first, while the
    // guest runs, so the freeze inside the window stays O(1).
    if (opts.onSuspended) await vm.settleDisks();
    const tSuspend = performance.now();
    await vm.suspend();
    suspended = true;
    switchoverTimer = setTimeout(
      () => stream.cancel(`switchover took longer than ${opts.switchoverTimeoutMs} ms; source resumed`),
      opts.switchoverTimeoutMs,
    );
    await opts.onSuspended?.();
    if (opts.fault === 'corrupt-final-frame') corruptPending = true;
    const finalRound = round + 1;
    const finalPages = await sendRound(finalRound, false);
    const state = vm.saveState();
    await stream.write({ state: { vcpu: state.vcpu, devices: state.devices, crc32: stateCrc(state.vcpu, state.devices) } });
    const summary = await stream.end();
    const downtimeMs = performance.now() - tSuspend;
    clearTimeout(switchoverTimer);
    opts.onSwitchover?.({ finalPages, downtimeMs });

    // Verification is not part of the product's downtime: it is measured and reported apart.
    let sourceHash = '';
    let verifyMs = 0;
    if (opts.verify) {
      const v0 = performance.now();
      sourceHash = await vm.memoryHash();
      verifyMs = performance.now() - v0;
    }
    // A VM that was not running (say, a finished clone not yet started) stays as it was.
    if (wasRunning) await vm.run();
    suspended = false;
    log.info({ rounds: perRound.length, finalPages, downtimeMs, reason, applied: summary.pagesApplied }, 'pre-copy finished');
    return {
      rounds: perRound.length,
      pagesPerRound: perRound,
      bytesRaw: enc.bytesRaw,
      bytesWire: enc.bytesWire,
      downtimeMs,
      totalMs: performance.now() - t0,
      sourceHash,
      cloneHash: '',
      verifyMs,
      converged: reason === 'converged',
      stopReason: reason,
      finalPages,
      round0BytesPerS,
      // Filled in by the disk copy that follows (clone-job.ts).
      diskBlocks: 0,
      diskBytesRaw: 0,
      diskBytesWire: 0,
      diskCopyMs: 0,
      diskLinked: false,
    };
  } catch (err) {
    stream.cancel('pre-copy failed');
    throw err;
  } finally {
    clearTimeout(switchoverTimer);
    opts.signal?.removeEventListener('abort', onAbort);
    if (suspended && wasRunning) {
      try {
        await vm.run();
        log.warn('source VM resumed after a failed switchover');
      } catch (err) {
        log.error({ err }, 'could not resume the source VM');
      }
    }
  }
}

export type Flush = (round: number) => Promise<void>;

/** Every page of `pages` into the encoder, flushing full batches. */
export async function sendAll(pages: GuestPages, enc: PageBatchEncoder, round: number, flush: Flush): Promise<number> {
  for (let i = 0; i < pages.pageCount; i++) {
    enc.add(i, pages.page(i));
    if (enc.full) await flush(round);
  }
  return pages.pageCount;
}

async function sendDirty(pages: GuestPages, enc: PageBatchEncoder, round: number, flush: Flush): Promise<number> {
  let sent = 0;
  for (let w = 0; w < pages.dirtyWords; w++) {
    // Clear before copy: a write landing after this exchange marks the page dirty again.
    let bits = pages.takeDirtyWord(w);
    while (bits !== 0) {
      const low = bits & -bits;
      const i = w * 32 + (31 - Math.clz32(low));
      bits ^= low;
      if (i >= pages.pageCount) continue;
      enc.add(i, pages.page(i));
      sent++;
      if (enc.full) await flush(round);
    }
  }
  return sent;
}
