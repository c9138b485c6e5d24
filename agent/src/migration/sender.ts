/**
 * The source side of a live clone on the qemu driver (seed 000 on a real hypervisor). QEMU's own migration moves
 * memory and device state: the source QEMU migrates into a unix socket this agent owns, the relay cuts the stream
 * into LZ4 frames, and a StreamMigration call carries them to the target agent, which feeds the clone's QEMU
 * (started with `-S -incoming defer`). The coordinator's threshold is QEMU's switchover point, and
 * `pause-before-switchover` gives the suspended window in which the disks become point-in-time (an external
 * snapshot: the base turns read-only, the source goes on in an overlay). The source then gets `cont`; the clone
 * waits, paused, for its disks (StreamDisk, as on the sim driver) and for whoever runs it.
 */
import { performance } from 'node:perf_hooks';
import { PAGE_SIZE, type CloneStartArgs, type CloneStats } from '../../../shared/src/mod.js';
import type { DataPlaneClient } from '../dataplane/client.js';
import { MigrationStream } from '../dataplane/client.js';
import type { DiskSnapshot } from '../drivers/driver.js';
import { runSourceClone, type CloneRound } from '../drivers/qemu/qemu-clone.js';
import type { QemuVm } from '../drivers/qemu/qemu-vm.js';
import type { JobEvents } from '../job-events.js';

export interface MigrationCloneDeps {
  host: string;
  client: DataPlaneClient;
  deadlineMs: number;
  signal: AbortSignal;
  events: JobEvents;
  log: import('../../../shared/src/mod.js').Logger;
  /** A backup's checkpoint, started in the window with the disks' snapshot. */
  checkpoint?: string;
}

/** Memory and state over QEMU's migration; resolves with the source running again and its disks frozen. */
export async function migrateToClone(
  vm: QemuVm,
  args: CloneStartArgs,
  deps: MigrationCloneDeps,
): Promise<{ stats: CloneStats; snapshot: DiskSnapshot }> {
  const base = { host: deps.host, jobId: args.jobId, vm: vm.id };
  const stream = new MigrationStream(deps.client, args.targetHost, deps.deadlineMs, args.tokens.pages);
  // The clone fails as soon as the target does (its QEMU or its agent died), or the job is cancelled.
  const abort = new AbortController();
  stream.onFailure((err) => abort.abort(err));
  const onCancel = () => abort.abort(deps.signal.reason);
  if (deps.signal.aborted) onCancel();
  deps.signal.addEventListener('abort', onCancel, { once: true });
  const t0 = performance.now();
  const rounds: CloneRound[] = [];
  let lastAt = t0;
  try {
    await stream.write({ open: { jobId: args.jobId, targetVmId: args.targetVmId } });
    const r = await runSourceClone(vm, (frame) => stream.write({ data: frame }), {
      downtimeLimitMs: 300,
      switchoverBytes: Math.max(1, args.thresholdPages) * PAGE_SIZE,
      maxRounds: args.maxRounds,
      maxBandwidthBytesPerS: args.maxBandwidthBytesPerS,
      signal: abort.signal,
      ...(deps.checkpoint ? { snapshot: { checkpoint: deps.checkpoint } } : {}),
      logger: deps.log,
      onRound: (round) => {
        const now = performance.now();
        const prev = rounds.at(-1);
        rounds.push(round);
        deps.events.emit({
          ...base,
          type: 'clone.round',
          round: round.round,
          pages: Math.ceil((round.transferredBytes - (prev?.transferredBytes ?? 0)) / PAGE_SIZE),
          bytesRaw: round.relayRawBytes,
          bytesWire: round.relayWireBytes,
          ms: now - lastAt,
        });
        lastAt = now;
      },
    });
    // The clone's QEMU took the whole stream: the target says so once its migration completed.
    const landed = await stream.end();
    const snapshot = r.snapshot ?? emptySnapshot(vm.id);
    const finalPages = Math.ceil(r.remainingBytesAtSwitchover / PAGE_SIZE);
    deps.events.emit({ ...base, type: 'clone.switchover', finalPages, downtimeMs: r.downtimeMs });
    deps.log.info(
      { rounds: r.rounds, downtimeMs: r.downtimeMs, bytesRaw: r.bytesRaw, bytesWire: r.bytesWire, landMs: Math.round(landed.landMs), forced: r.forcedSwitchover },
      'memory migrated',
    );
    const first = rounds[0];
    const stats: CloneStats = {
      rounds: r.rounds,
      pagesPerRound: rounds.map((x, i) => Math.ceil((x.transferredBytes - (rounds[i - 1]?.transferredBytes ?? 0)) / PAGE_SIZE)),
      bytesRaw: r.bytesRaw,
      bytesWire: r.bytesWire,
      downtimeMs: r.downtimeMs,
      totalMs: performance.now() - t0,
      // QEMU keeps guest memory to itself: the stream's integrity is checked frame by frame (CRC and sequence) and
      // by QEMU's own migration; a memory hash is not taken on qemu (the test guest checks its own memory).
      sourceHash: '',
      cloneHash: '',
      verifyMs: 0,
      converged: !r.forcedSwitchover,
      stopReason: r.forcedSwitchover ? `max rounds (${args.maxRounds}) reached: the switchover was forced` : 'below the switchover threshold',
      finalPages,
      round0BytesPerS: first && first.transferredBytes > 0 ? first.transferredBytes / Math.max(0.001, r.qemuTotalMs / 1000 / Math.max(1, r.rounds)) : 0,
      diskBlocks: 0,
      diskBytesRaw: 0,
      diskBytesWire: 0,
      diskCopyMs: 0,
      diskLinked: false,
    };
    return { stats, snapshot };
  } catch (err) {
    stream.cancel(`the live clone failed: ${err instanceof Error ? err.message : String(err)}`);
    throw err;
  } finally {
    deps.signal.removeEventListener('abort', onCancel);
  }
}

/** A VM without disks still ends its clone with a (empty) snapshot to release. */
function emptySnapshot(vmId: string): DiskSnapshot {
  return { id: `${vmId}-none`, disks: [], changes: [], chains: [], release: async () => undefined };
}
