/**
 * A hot clone (seed 004) on the source host: the VM is cloned without ever
 * being suspended.
 *
 *  1. Freeze, slowest level first (driver.hotFreeze): the disks take new overlays
 *     (the frozen layers become the clone's base), the guest's memory writes go
 *     to a bounded buffer, and its vCPU and device state are copied.
 *  2. Copy the frozen memory image and the vCPU/device state to the target (the
 *     same page stream as a pre-copy clone: LZ4 batches, CRC-checked).
 *  3. Unfreeze: the buffered writes are merged back into the source's memory.
 *  4. The clone gets its disks: a second pointer to the frozen layers on the
 *     shared datastore (an overlay of its own), or a full copy when asked.
 *
 * Every way out (failure, cancel, agent stop) unfreezes and releases the disk
 * snapshot, so the source keeps every write; the coordinator removes the
 * half-made clone of a failed job.
 */
import {
  DataCorruptionError,
  ResourceExhaustedError,
  PageBatchEncoder,
  stateCrc,
  toDoppelError,
  type HotCloneStartArgs,
  type HotCloneStats,
  type Logger,
} from '../../shared/src/mod.js';
import type { DriverVm, HotFreeze, HotFreezeStats } from './drivers/driver.js';
import { PageStream, type DataPlaneClient } from './dataplane/client.js';
import { sendAll } from './precopy/sender.js';
import { Pacer } from './precopy/pacer.js';
import { cloneMemoryHash, giveCloneDisks, type CloneJobDeps } from './clone-job.js';
import { jobEvents } from './job-events.js';

export interface HotCloneDeps extends CloneJobDeps {
  /** Cap on raw page bytes per second of the memory copy (0: none). */
  maxBandwidthBytesPerS: number;
}

/** Streams the frozen image and the frozen machine state; the target checks every frame and the state's CRC. */
async function copyFrozenMemory(
  hot: HotFreeze,
  client: DataPlaneClient,
  args: HotCloneStartArgs,
  deps: HotCloneDeps,
  signal: AbortSignal,
): Promise<{ pages: number; bytesRaw: number; bytesWire: number; ms: number }> {
  const t0 = performance.now();
  const { pages } = hot;
  const enc = new PageBatchEncoder({ pageSize: pages.pageSize });
  const stream = new PageStream(client, args.targetHost, deps.deadlineMs, args.tokens.pages);
  const pacer = new Pacer(deps.maxBandwidthBytesPerS);
  const onAbort = () => stream.cancel(`hot clone cancelled: ${reasonText(signal.reason)}`);
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await stream.write({ open: { jobId: args.jobId, targetVmId: args.targetVmId, pageSize: pages.pageSize, pageCount: pages.pageCount } });
    const flush = async (round: number) => {
      if (enc.size === 0) return;
      await stream.write({ batch: enc.finish(round) });
      await pacer.pace(enc.bytesRaw);
    };
    const sent = await sendAll(pages, enc, 0, flush);
    await flush(0);
    await stream.write({ roundEnd: { round: 0, pages: sent } });
    const { vcpu, devices } = hot.state;
    await stream.write({ state: { vcpu, devices, crc32: stateCrc(vcpu, devices) } });
    await stream.end();
    return { pages: sent, bytesRaw: enc.bytesRaw, bytesWire: enc.bytesWire, ms: performance.now() - t0 };
  } catch (err) {
    stream.cancel('hot clone: memory copy failed');
    throw err;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

function reasonText(reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}

/** A source guest stalled this long on a full write buffer ends the clone: the copy is too slow for its writes. */
export const FULL_BUFFER_LIMIT_MS = 30_000;

/**
 * Watches a freeze while the image is copied: a buffer that stays full (the guest's memory writes stalled) for
 * FULL_BUFFER_LIMIT_MS aborts the copy, so a stuck or very slow target cannot hold the source up for long.
 */
function fullBufferWatchdog(hot: HotFreeze, parent: AbortSignal): { signal: AbortSignal; stop(): void } {
  const ac = new AbortController();
  let fullSince = 0;
  const timer = setInterval(() => {
    if (!hot.bufferFull()) {
      fullSince = 0;
      return;
    }
    fullSince ||= Date.now();
    if (Date.now() - fullSince >= FULL_BUFFER_LIMIT_MS) {
      ac.abort(
        new ResourceExhaustedError(
          `the source's write buffer has been full for ${FULL_BUFFER_LIMIT_MS / 1000} s (its guest's memory writes stalled): the copy to the target is too slow for its write rate; use a pre-copy clone, or a faster link`,
        ),
      );
    }
  }, 250);
  timer.unref();
  return { signal: AbortSignal.any([parent, ac.signal]), stop: () => clearInterval(timer) };
}

/** Bytes of data in the frozen layers (the base the source and the clone share), as the source's chain holds them. */
function sharedBaseBytes(vm: DriverVm, hot: HotFreeze): number {
  const frozen = new Set(hot.disks.chains.flat());
  return vm
    .storageUsage()
    .filter((l) => frozen.has(l.id))
    .reduce((n, l) => n + l.bytes, 0);
}

export async function runHotCloneJob(vm: DriverVm, args: HotCloneStartArgs, deps: HotCloneDeps): Promise<void> {
  const log: Logger = deps.log.child({ jobId: args.jobId, vm: vm.id, kind: 'hot-clone' });
  const events = jobEvents(deps.js, log);
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  const t0 = performance.now();
  const suspends = vm.suspendCount;
  let hot: HotFreeze | undefined;
  let merged: HotFreezeStats | undefined;
  try {
    hot = await vm.hotFreeze({ bufferBytes: args.bufferBytes });
    const first = hot.levels[0]?.frozenAt ?? 0;
    const levels = hot.levels.map((l) => ({ level: l.level, what: l.what, offsetMs: l.frozenAt - first }));
    events.emit({ ...base, type: 'clone.frozen', levels });
    log.info({ levels: levels.map((l) => `${l.level}+${l.offsetMs.toFixed(3)}ms`) }, 'source frozen (disks, RAM, vCPU); the guest runs on');

    const frozenHash = args.verify ? await hot.frozenHash() : '';
    const watchdog = fullBufferWatchdog(hot, deps.signal);
    let mem: Awaited<ReturnType<typeof copyFrozenMemory>>;
    try {
      mem = await copyFrozenMemory(hot, deps.client, args, deps, watchdog.signal);
    } catch (err) {
      throw watchdog.signal.aborted && !deps.signal.aborted ? watchdog.signal.reason : err;
    } finally {
      watchdog.stop();
    }
    events.emit({ ...base, type: 'clone.memory-copied', ...mem });
    log.info({ pages: mem.pages, bytesWire: mem.bytesWire, ms: Math.round(mem.ms), buffered: hot.bufferedWrites() }, 'frozen memory copied');
    // The memory is on the target: the source's buffered writes go back in before the disks are handed over.
    merged = await hot.unfreeze();
    log.info({ buffered: merged.bufferedWrites, stallMs: +merged.stallMs.toFixed(3), frozenMs: Math.round(merged.frozenMs) }, 'source unfrozen: buffered writes merged');
    // The clone's image does not change before it runs: compared after the unfreeze, so the source is not held up.
    let cloneHash = '';
    if (args.verify) {
      cloneHash = (await cloneMemoryHash(deps.client, args)).memoryHash;
      if (cloneHash !== frozenHash) {
        throw new DataCorruptionError(`clone memory hash ${cloneHash.slice(0, 16)}… differs from the frozen image's ${frozenHash.slice(0, 16)}…`);
      }
    }

    const disk = await giveCloneDisks(hot.disks, args, { ...deps, events, base });
    const shared = disk.linked ? sharedBaseBytes(vm, hot) : 0;
    await hot.disks.release('abort');
    const stats: HotCloneStats = {
      frozenHash,
      cloneHash,
      levels,
      bufferedWrites: merged.bufferedWrites,
      mergedWrites: merged.mergedWrites,
      sourceStallMs: merged.stallMs,
      maxStallMs: merged.maxStallMs,
      bufferFullWaits: merged.fullWaits,
      sourceSuspended: vm.suspendCount !== suspends,
      frozenMs: merged.frozenMs,
      mergeMs: merged.mergeMs,
      memoryBytesRaw: mem.bytesRaw,
      memoryBytesWire: mem.bytesWire,
      memoryCopyMs: mem.ms,
      diskLinked: disk.linked,
      diskBlocks: disk.blocks,
      diskBytesRaw: disk.bytesRaw,
      diskBytesWire: disk.bytesWire,
      diskCopyMs: disk.ms,
      sharedBaseBytes: shared,
      totalMs: performance.now() - t0,
    };
    deps.onSettled();
    await events.result({ ...base, type: 'clone.hot-completed', hot: stats });
    log.info({ stallMs: +stats.sourceStallMs.toFixed(3), linked: disk.linked, totalMs: Math.round(stats.totalMs) }, 'hot clone completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'hot clone failed; the source runs on with all its writes');
    await settle(hot, merged, log);
    deps.onSettled();
    await events.result({ ...base, type: 'clone.failed', error: e.toJSON() });
  }
}

/** On failure: the buffered writes go back and the frozen disks are released, whatever happened before. */
async function settle(hot: HotFreeze | undefined, merged: HotFreezeStats | undefined, log: Logger): Promise<void> {
  if (!hot) return;
  if (!merged) {
    try {
      const m = await hot.unfreeze();
      log.info({ buffered: m.bufferedWrites, merged: m.mergedWrites }, 'source unfrozen after the failure');
    } catch (err) {
      log.error({ err }, 'could not unfreeze the source');
    }
  }
  await hot.disks.release('abort').catch((err: unknown) => log.error({ err }, 'could not release the frozen disks'));
}
