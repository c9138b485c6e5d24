/**
 * The live clone of a QEMU VM (seed 000 on real QEMU), transport-agnostic: the source half hands the migration
 * stream to a FrameSink (migration-relay.ts frames), the target half takes frames in through a MigrationFeed. In
 * one process the sink is `feed.write`; across agents, a data-plane stream carries the frames.
 *
 *   target: prepareCloneTarget (QEMU with the source's command line, `-S -incoming defer`, blank disks)
 *           acceptMigration   (`migrate-incoming unix:` + feedIncoming: frames in; its `signal` aborts the
 *                              source when the destination ends the stream early)
 *   source: runSourceClone    (`migrate unix:` into listenForMigration; the disks' overlays prepared while the
 *                              first pass runs; at `pre-switchover` only the snapshot's transaction (the bases
 *                              freeze, the source goes on in overlays), `migrate-continue`, `cont` the source,
 *                              then the views over the frozen bases)
 *   target: finishIncoming    (waits for the migration to land: paused, disks active)
 *           copyFrozenDisks   (streamed: the allocated blocks of each frozen base, read as a DiskView, written
 *                              with NBD WRITE into the clone's own export of its disk node)
 *        or linkFrozenDisks   (shared datastore: the clone's blank disk gets the frozen base as its backing)
 *           then vm.run()
 *   source: releaseFrozenDisks (streamed: the overlays fold back; shareable, for a linked clone: the frozen images
 *                              stay as shared bases under the source's overlays)
 *
 * Why NBD WRITE into the clone's QEMU rather than `qemu-img convert -n` into its file: after the migration the
 * clone's QEMU has its images active (opened, locked, metadata cached), so writing the file from outside would
 * need the images kept inactive (late-block-activate) and re-read at `cont`; through QEMU's own export the writes
 * go through the same block layer the guest will use, and the writer only needs blocks, not a file: across hosts
 * the blocks come from the source's DiskView over the data plane.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortedError,
  DoppelError,
  FailedPreconditionError,
  InvalidArgumentError,
  UnavailableError,
  DeadlineExceededError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import type { VmIdentity, VmSpec } from '../../../../shared/src/mod.js';
import type { DiskSnapshot, DiskView } from '../driver.js';
import { feedIncoming, listenForMigration, MigrationRelayError, type FrameSink, type MigrationFeed, type RelayStats } from './migration-relay.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';
import type { MigrationInfo, QmpClient } from './qmp.js';
import type { QemuDriver } from './qemu-driver.js';
import type { PreparedDiskSnapshot, QemuVm } from './qemu-vm.js';

const TEN_GB_PER_S = 10_000_000_000;
/** QEMU's largest downtime-limit (ms): set to force a switchover. */
const MAX_DOWNTIME_LIMIT_MS = 2_000_000;
const ROUND_POLL_MS = 100;
const EVENT_TIMEOUT_MS = 10 * 60_000;
const CANCEL_TIMEOUT_MS = 15_000;
const INCOMING_TIMEOUT_MS = 60_000;
const COPY_CHUNK_BYTES = 1024 * 1024;

// ---- target side ----

/**
 * Creates the clone VM on the target host, paused and waiting for an incoming migration (`-S -incoming defer`):
 * the source's spec (memory, vCPUs, CPU model, disks) under a new name and identity; the driver's boot data and
 * its pinned machine type must be the source's (same image and QEMU build). QemuDriver.create({ incoming }) gives
 * each disk a blank staged base `<disk>.base.qcow2` (filled by copyFrozenDisks or writeDiskBlocks); with
 * `linkedBases` (a shared datastore) the disks are to overlay the source's frozen images instead.
 */
export async function prepareCloneTarget(
  driver: QemuDriver,
  sourceSpec: VmSpec,
  name: string,
  identity: VmIdentity,
  opts: { cloneOf?: string; linkedBases?: readonly string[] } = {},
): Promise<QemuVm> {
  const spec: VmSpec = { ...sourceSpec, name, identity, disks: sourceSpec.disks.map((d) => ({ ...d, image: '' })) };
  if (opts.linkedBases && opts.linkedBases.length !== spec.disks.length) throw new InvalidArgumentError(`${opts.linkedBases.length} linked bases for ${spec.disks.length} disks`);
  const vm = await driver.create(spec, { incoming: true, ...(opts.cloneOf ? { cloneOf: opts.cloneOf } : {}) });
  if (opts.linkedBases) {
    try {
      await vm.stageLinkedBases(opts.linkedBases);
    } catch (err) {
      await driver.destroy(vm.id).catch(() => undefined);
      throw err;
    }
  }
  return vm;
}

/** The target's end of the stream: feed it frames (sink = feed.write), then finishIncoming(). */
export interface IncomingMigration {
  /** The destination QEMU's incoming socket. */
  socketPath: string;
  feed: MigrationFeed;
  /**
   * Aborts, with the feed's destination-side MigrationRelayError as its reason, when the destination went away
   * before the stream ended (MigrationFeed.endedEarly): in one process, pass it as runSourceClone's `signal`;
   * across agents, the target reports it on the data-plane stream and the source aborts with it.
   */
  signal: AbortSignal;
  /** The QMP event sequence before migrate-incoming (for finishIncoming). */
  afterSeq: number;
}

/** `migrate-incoming unix:PATH` on a socket next to the VM's own, and a feed connected to it. */
export async function acceptMigration(vm: QemuVm, opts: { logger?: Logger; peerCloseGraceMs?: number } = {}): Promise<IncomingMigration> {
  const qmp = need(vm);
  const st = await qmp.queryStatus();
  if (st.status !== 'inmigrate') throw new FailedPreconditionError(`vm ${vm.id} is not waiting for a migration (its run state is ${st.status}); create it with incoming: true`);
  await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
  const socketPath = join(dirname(vm.serialSocketPath || vm.qmpSocketPath), 'incoming.sock');
  rmSync(socketPath, { force: true });
  const afterSeq = qmp.lastEventSeq;
  await qmp.execute('migrate-incoming', { uri: `unix:${socketPath}` });
  const feed = await feedIncoming(socketPath, {
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.peerCloseGraceMs !== undefined ? { peerCloseGraceMs: opts.peerCloseGraceMs } : {}),
  });
  const ended = new AbortController();
  void feed.endedEarly.then((err) => ended.abort(err));
  return { socketPath, feed, signal: ended.signal, afterSeq };
}

/**
 * Waits for the incoming migration to land: `completed`, then the run state `paused` (disks active). A failed
 * migration, or a QEMU that went away, is an UnavailableError naming QEMU's reason.
 */
export async function finishIncoming(vm: QemuVm, incoming: IncomingMigration, timeoutMs = INCOMING_TIMEOUT_MS): Promise<void> {
  const qmp = need(vm);
  const e = await qmp.waitForEvent('MIGRATION', { afterSeq: incoming.afterSeq, predicate: (ev) => ['completed', 'failed', 'cancelled'].includes(String(ev.data.status)), timeoutMs });
  const status = String(e.data.status);
  if (status !== 'completed') {
    const info = await qmp.queryMigrate().catch(() => null);
    throw new UnavailableError(`the incoming migration of clone ${vm.id} ${status}${info?.errorDesc ? `: ${info.errorDesc}` : ''}`);
  }
  const deadline = Date.now() + 10_000;
  for (;;) {
    const st = await qmp.queryStatus();
    if (st.status !== 'inmigrate') {
      if (st.status !== 'paused') throw new FailedPreconditionError(`clone ${vm.id} left the migration in run state ${st.status}, not paused`);
      return;
    }
    if (Date.now() > deadline) throw new DeadlineExceededError(`clone ${vm.id}: still inmigrate 10 s after its migration completed`);
    await sleep(10);
  }
}

// ---- source side ----

export interface CloneRound {
  /** QEMU's dirty-sync-count: passes over memory so far. */
  round: number;
  remainingBytes: number;
  transferredBytes: number;
  /** Relay: raw and wire bytes accepted by the sink so far. */
  relayRawBytes: number;
  relayWireBytes: number;
}

export interface SourceCloneOptions {
  /** QEMU's downtime-limit: the switchover comes when what is left fits in this at the measured bandwidth. */
  downtimeLimitMs: number;
  /** QEMU's max-bandwidth; 0 = 10 GB/s (no cap worth the name: the sink's backpressure is the limit). */
  maxBandwidthBytesPerS: number;
  /**
   * The coordinator's threshold as QEMU's switchover point: QEMU switches over once at most this many bytes are
   * left to send. Set as `avail-switchover-bandwidth` = these bytes per second with `downtime-limit` 1000 ms, so
   * QEMU's own test (remaining <= bandwidth × downtime-limit) is exactly "remaining <= threshold", whatever
   * bandwidth it measures. 0: QEMU's test with its measured bandwidth and `downtimeLimitMs`.
   */
  switchoverBytes?: number;
  /**
   * After this many passes over memory without reaching the switchover point, the switchover is forced
   * (downtime-limit raised to QEMU's maximum): the clone then pauses longer than planned. 0: no bound.
   */
  maxRounds?: number;
  /**
   * The disk snapshot taken in the window: a backup's checkpoint; `shareable` for a linked clone on a shared
   * datastore (its `chains` are what the clone's linkDisks takes, and its release keeps the source on its overlays).
   */
  snapshot?: { checkpoint?: string; shareable?: boolean };
  onRound?: (r: CloneRound) => void;
  /**
   * Aborts the clone. A DoppelError as the reason (e.g. the data-plane stream to the target failed) is the cause of
   * the CloneFailedError; any other reason makes it an AbortedError.
   */
  signal?: AbortSignal;
  /** Called in the suspended window, after the disks' snapshot and before migrate-continue (bookkeeping, tests). */
  onSwitchover?: () => Promise<void> | void;
  /** Bound on the sink's first frame (QEMU connecting to the relay); default 30 s. */
  acceptTimeoutMs?: number;
  /**
   * Take the whole disk snapshot inside the window (overlays created, transaction, views opened), as before
   * prepareSnapshot existed: only to measure what preparing saves. Default: the overlays are prepared while the
   * first pass runs, the window only commits, the views open once the source runs again.
   */
  snapshotInWindow?: boolean;
  logger?: Logger;
}

/** A frozen disk base: read it (view) for a streamed copy, or overlay it (path) on a shared datastore. */
export interface FrozenDisk {
  name: string;
  /** The base image, read-only since the switchover (the disk's own image file). */
  path: string;
  /** A read-only view of the base (the source QEMU's NBD export), for a streamed copy. */
  view: DiskView;
}

export interface SourceCloneStats {
  /** Memory passes (QEMU's dirty-sync-count). */
  rounds: number;
  /** The switchover came from maxRounds, not from reaching the switchover point. */
  forcedSwitchover: boolean;
  /** Bytes QEMU had left to send at the last pass before the switchover (its last report). */
  remainingBytesAtSwitchover: number;
  /** Bytes QEMU sent (ram.transferred). */
  bytesRaw: number;
  /** Bytes the relay put on the wire (LZ4 frames). */
  bytesWire: number;
  relay: RelayStats;
  /** QEMU's downtime (the pause window included), ms. */
  downtimeMs: number;
  /** QEMU's total-time, ms. */
  qemuTotalMs: number;
  /** Wall clock, from the capabilities to the source running again, ms. */
  totalMs: number;
  /** How long the disks' snapshot took inside the window (the transaction, when prepared), ms. */
  snapshotMs: number;
  /** Preparing the snapshot's overlays while the migration ran, ms (0 with snapshotInWindow). */
  snapshotPrepareMs: number;
  /** `cont` retries after the migration ("not finalized"), as the wall time it took, ms. */
  resumeMs: number;
  frozen: FrozenDisk[];
  /**
   * The source's disk snapshot: release it (releaseFrozenDisks) once the clone has its disks. A shareable one (a
   * linked clone) keeps the source on its overlays at its release: the frozen images stay, as shared bases.
   */
  snapshot: DiskSnapshot | null;
}

/** A failed live clone: `stage` says where; `qemuError` is QEMU's error-desc when it had one. */
export class CloneFailedError extends UnavailableError {
  override name = 'CloneFailedError';
  readonly stage: string;
  readonly qemuError: string;
  constructor(message: string, opts: { stage: string; qemuError: string; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.stage = opts.stage;
    this.qemuError = opts.qemuError;
  }
}

function need(vm: QemuVm): QmpClient {
  const qmp = vm.qmpClient;
  if (!qmp) throw new FailedPreconditionError(`vm ${vm.id} has no running QEMU`);
  return qmp;
}

const errMsg = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * The source half of a live clone (see the file comment). Resolves once the migration completed and the source
 * runs again, with the frozen disk bases for the disk step. On any failure or abort: `migrate_cancel`, the
 * snapshot (if taken) folded back, the source running, and a CloneFailedError (an AbortedError for the signal)
 * naming what failed.
 */
export async function runSourceClone(vm: QemuVm, sink: FrameSink, opts: SourceCloneOptions): Promise<SourceCloneStats> {
  if (!Number.isFinite(opts.downtimeLimitMs) || opts.downtimeLimitMs <= 0) throw new InvalidArgumentError(`downtimeLimitMs must be a positive number (got ${opts.downtimeLimitMs})`);
  if (!Number.isFinite(opts.maxBandwidthBytesPerS) || opts.maxBandwidthBytesPerS < 0) throw new InvalidArgumentError(`maxBandwidthBytesPerS must be 0 or more (got ${opts.maxBandwidthBytesPerS})`);
  const log = (opts.logger ?? silentLogger()).child({ component: 'qemu-clone', vm: vm.id });
  const qmp = need(vm);
  opts.signal?.throwIfAborted();
  const t0 = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'doppel-mig-'));
  const socketPath = join(dir, 'out.sock');
  let stage = 'setup';
  let snapshot: DiskSnapshot | null = null;
  let prepared: PreparedDiskSnapshot | null = null;
  let snapshotPrepareMs = 0;
  let migrating = false;
  let forced = false;
  let lastRemaining = 0;
  // Whatever stops the clone first: the relay, the signal. The QMP waits race it.
  let stopReason: Error | null = null;
  const stopper = new AbortController();
  const stop = (err: Error): void => {
    if (stopReason) return;
    stopReason = err;
    stopper.abort(err);
  };
  const onAbort = (): void => {
    const reason: unknown = opts.signal?.reason;
    stop(reason instanceof DoppelError && !(reason instanceof AbortedError) ? reason : new AbortedError(`the live clone of vm ${vm.id} was aborted${reason instanceof Error ? `: ${reason.message}` : ''}`));
  };
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const source = await listenForMigration(socketPath, sink, { acceptTimeoutMs: opts.acceptTimeoutMs ?? 30_000, logger: log }).catch((err: unknown) => {
    opts.signal?.removeEventListener('abort', onAbort);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  void source.done.catch((err: unknown) => stop(err instanceof Error ? err : new Error(String(err))));
  let poller: Promise<void> | null = null;
  let polling = false;
  try {
    stage = 'capabilities';
    await qmp.execute('migrate-set-capabilities', {
      capabilities: [
        { capability: 'events', state: true },
        { capability: 'pause-before-switchover', state: true },
      ],
    });
    const switchoverBytes = Math.max(0, Math.round(opts.switchoverBytes ?? 0));
    await qmp.execute('migrate-set-parameters', {
      'downtime-limit': switchoverBytes > 0 ? 1000 : Math.max(1, Math.round(opts.downtimeLimitMs)),
      'avail-switchover-bandwidth': switchoverBytes,
      'max-bandwidth': opts.maxBandwidthBytesPerS === 0 ? TEN_GB_PER_S : Math.round(opts.maxBandwidthBytesPerS),
    });
    stopper.signal.throwIfAborted();

    stage = 'migrate';
    const seq = qmp.lastEventSeq;
    await qmp.execute('migrate', { uri: `unix:${socketPath}` });
    migrating = true;
    polling = true;
    let lastRound = -1;
    poller = (async () => {
      while (polling) {
        try {
          const info = await qmp.queryMigrate();
          const round = info.ram?.dirtySyncCount ?? 0;
          if (info.ram && round !== lastRound && polling) {
            lastRound = round;
            lastRemaining = info.ram.remaining;
            if (opts.maxRounds && round >= opts.maxRounds && !forced) {
              // Not converging: QEMU switches over at its next check, whatever is left.
              forced = true;
              await qmp.execute('migrate-set-parameters', { 'downtime-limit': MAX_DOWNTIME_LIMIT_MS });
              log.warn({ round, remainingBytes: info.ram.remaining }, 'no switchover point within the round limit: forcing the switchover');
            }
            opts.onRound?.({
              round,
              remainingBytes: info.ram.remaining,
              transferredBytes: info.ram.transferred,
              relayRawBytes: source.stats.rawBytes,
              relayWireBytes: source.stats.wireBytes,
            });
          }
        } catch {
          // QEMU busy or gone: the event wait notices.
        }
        await sleep(ROUND_POLL_MS);
      }
    })();
    const waitStatus = async (statuses: string[]): Promise<string> => {
      const e = await qmp.waitForEvent('MIGRATION', { afterSeq: seq, predicate: (ev) => statuses.includes(String(ev.data.status)), timeoutMs: EVENT_TIMEOUT_MS, signal: stopper.signal });
      return String(e.data.status);
    };

    // The overlays, while the first pass runs: the window then only runs the snapshot's transaction. (A
    // pre-switchover that comes meanwhile waits for it: the event is not missed, the window is longer.)
    if (vm.disks().length > 0 && !opts.snapshotInWindow) {
      stage = 'disk snapshot prepare';
      const p0 = performance.now();
      prepared = await vm.prepareSnapshot(opts.snapshot ?? {});
      snapshotPrepareMs = performance.now() - p0;
      stopper.signal.throwIfAborted();
    }

    stage = 'precopy';
    const at = await waitStatus(['pre-switchover', 'failed', 'cancelled', 'completed']);
    if (at !== 'pre-switchover') throw new FailedPreconditionError(`the migration ${at} before the switchover`);
    stopper.signal.throwIfAborted();

    // The window: the source's vCPUs are stopped (finish-migrate). The disks freeze here.
    stage = 'disk snapshot';
    const s0 = performance.now();
    if (prepared) await prepared.commit();
    else if (vm.disks().length > 0) snapshot = await vm.snapshotDisks(opts.snapshot ?? {});
    const snapshotMs = performance.now() - s0;
    stage = 'switchover window';
    await opts.onSwitchover?.();
    stopper.signal.throwIfAborted();
    stage = 'switchover';
    await qmp.execute('migrate-continue', { state: 'pre-switchover' });
    const end = await waitStatus(['completed', 'failed', 'cancelled']);
    if (end !== 'completed') throw new FailedPreconditionError(`the migration ${end} after the switchover`);
    migrating = false;
    polling = false;
    await poller;

    stage = 'relay end';
    const relay = await source.done;
    const info: MigrationInfo = await qmp.queryMigrate();
    stage = 'resume source';
    const r0 = performance.now();
    await vm.run();
    const resumeMs = performance.now() - r0;
    if (prepared) {
      // The views over the frozen bases, now that the source's disks are active again.
      stage = 'disk snapshot views';
      snapshot = await prepared.finish();
    }
    const files = vm.diskFiles();
    const frozen: FrozenDisk[] = (snapshot?.disks ?? []).map((view, i) => ({ name: files[i]?.name ?? view.name, path: files[i]?.path ?? '', view }));
    const stats: SourceCloneStats = {
      rounds: info.ram?.dirtySyncCount ?? 0,
      forcedSwitchover: forced,
      remainingBytesAtSwitchover: lastRemaining,
      bytesRaw: info.ram?.transferred ?? relay.rawBytes,
      bytesWire: relay.wireBytes,
      relay,
      downtimeMs: info.downtimeMs ?? 0,
      qemuTotalMs: info.totalTimeMs ?? 0,
      totalMs: performance.now() - t0,
      snapshotMs,
      snapshotPrepareMs,
      resumeMs,
      frozen,
      snapshot,
    };
    log.info({ ...stats, frozen: frozen.map((f) => f.path), snapshot: snapshot?.id, relay: undefined }, 'live clone: source done');
    return stats;
  } catch (err) {
    polling = false;
    const cause: unknown = stopReason ?? err;
    source.close(cause instanceof Error ? cause : undefined);
    let qemuError = '';
    if (migrating || stage === 'migrate') {
      try {
        const info = await qmp.queryMigrate();
        if (info.status === 'failed') qemuError = info.errorDesc ?? '';
        if (['setup', 'active', 'pre-switchover', 'device', 'wait-unplug'].includes(info.status)) {
          const cseq = qmp.lastEventSeq;
          await qmp.execute('migrate_cancel');
          await qmp
            .waitForEvent('MIGRATION', { afterSeq: cseq, predicate: (ev) => ['cancelled', 'failed', 'completed'].includes(String(ev.data.status)), timeoutMs: CANCEL_TIMEOUT_MS })
            .catch((e: unknown) => log.warn({ err: e }, 'no end of the cancelled migration'));
        }
      } catch (e) {
        log.warn({ err: e }, 'could not cancel the migration');
      }
    }
    await poller?.catch(() => undefined);
    if (snapshot) await snapshot.release('abort').catch((e: unknown) => log.warn({ err: e }, 'could not fold back the clone snapshot'));
    else if (prepared) await prepared.cancel().catch((e: unknown) => log.warn({ err: e }, 'could not undo the clone snapshot'));
    let resumeNote = '';
    try {
      await ensureRunning(vm, qmp);
    } catch (e) {
      resumeNote = `; the source could not be resumed: ${errMsg(e)}`;
      log.error({ err: e }, 'the source did not resume after a failed clone');
    }
    if (cause instanceof AbortedError) throw cause;
    const side = cause instanceof MigrationRelayError ? ` (relay ${cause.side} side)` : '';
    throw new CloneFailedError(
      `live clone of vm ${vm.id} failed at ${stage}${side}: ${errMsg(cause)}${qemuError ? `; QEMU: ${qemuError}` : ''}${resumeNote}`,
      { stage, qemuError, cause },
    );
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** After a cancelled migration: QEMU restarts a guest it stopped for the switchover itself; otherwise `cont`. */
async function ensureRunning(vm: QemuVm, qmp: QmpClient): Promise<void> {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const st = await qmp.queryStatus();
    if (st.running) return;
    // finish-migrate turns into running by itself after migrate_cancel; give it a moment.
    if (st.status !== 'finish-migrate' || Date.now() > deadline) break;
    await sleep(20);
  }
  await vm.run();
}

/**
 * Ends the source's side of a clone once the clone has its disks: a streamed clone's snapshot folds back; a
 * shareable one (a linked clone) leaves the frozen images as shared bases under the source's overlays.
 */
export async function releaseFrozenDisks(stats: SourceCloneStats): Promise<void> {
  await stats.snapshot?.release('abort');
}

// ---- the disk step ----

export interface CopyStats {
  bytes: number;
  blocks: number;
  ms: number;
}

/**
 * Streamed disks: every allocated block of each frozen base goes into the clone (paused, after finishIncoming())
 * with QemuVm.writeDiskBlocks: into the clone's blank staged base `<disk>.base.qcow2` through an NBD export of it on
 * the clone's QEMU (the clone's disk cannot take the writes itself: its virtio-blk device unshares `write` on its
 * node). The fill then ends: the copy becomes the backing of the clone's blank disk, in QEMU and in the header. The
 * clone must not run before this resolves (its run would finish the fill early, with blank blocks).
 */
export async function copyFrozenDisks(bases: readonly DiskView[], target: QemuVm, opts: { signal?: AbortSignal } = {}): Promise<CopyStats> {
  const qmp = need(target);
  const st = await qmp.queryStatus();
  if (st.running) throw new FailedPreconditionError(`clone ${target.id} runs: its disks can only be filled while it is paused`);
  const targetDisks = target.disks();
  if (bases.length !== targetDisks.length) throw new InvalidArgumentError(`${bases.length} frozen bases for a clone with ${targetDisks.length} disks`);
  const t0 = performance.now();
  let bytes = 0;
  let blocks = 0;
  const perChunk = Math.max(1, Math.floor(COPY_CHUNK_BYTES / DISK_BLOCK_SIZE));
  const buf = Buffer.alloc(perChunk * DISK_BLOCK_SIZE);
  for (const [i, base] of bases.entries()) {
    const want = targetDisks[i]!;
    if (base.sizeBytes !== want.sizeBytes || base.blockSize !== want.blockSize) {
      throw new InvalidArgumentError(`disk ${i}: the base has ${base.sizeBytes} bytes in blocks of ${base.blockSize}, the clone's disk ${want.sizeBytes} in blocks of ${want.blockSize}`);
    }
    let b = 0;
    while (b < base.blockCount) {
      opts.signal?.throwIfAborted();
      if (!base.isAllocated(b)) {
        b++;
        continue;
      }
      let n = 1;
      while (n < perChunk && b + n < base.blockCount && base.isAllocated(b + n)) n++;
      const len = Math.min(n * base.blockSize, base.sizeBytes - b * base.blockSize);
      await base.read(b, n, buf);
      // writeDiskBlocks copies what it sends: the buffer is free again once it resolves.
      await target.writeDiskBlocks(i, b, buf.subarray(0, len));
      bytes += len;
      blocks += n;
      b += n;
    }
  }
  await target.finishDisks();
  return { bytes, blocks, ms: performance.now() - t0 };
}

/**
 * Linked disks (shared datastore): each clone disk (blank) gets the frozen base itself as its backing, as staged by
 * prepareCloneTarget's `linkedBases`. Paused, after finishIncoming(). The base must never change again: the source
 * must keep its overlay (never release its snapshot: that folds the overlay back into the base).
 */
export async function linkFrozenDisks(bases: readonly FrozenDisk[], target: QemuVm): Promise<void> {
  need(target);
  const files = target.diskFiles();
  if (bases.length !== files.length) throw new InvalidArgumentError(`${bases.length} frozen bases for a clone with ${files.length} disks`);
  for (const [i, base] of bases.entries()) {
    if (!base.path) throw new InvalidArgumentError(`frozen disk ${i} has no path`);
    const staged = files[i]?.bases.at(-1) ?? '';
    if (resolve(staged) !== resolve(base.path)) {
      throw new FailedPreconditionError(`clone ${target.id} disk ${i} was staged over ${staged}, not over ${base.path}: pass the same bases to prepareCloneTarget's linkedBases`);
    }
  }
  await target.finishDisks();
}
