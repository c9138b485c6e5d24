/**
 * The target side of a QEMU migration stream (the qemu driver's live clone). The first frame names the clone the
 * target prepared (`-S -incoming defer`); the receiver then starts the clone's incoming migration on a local
 * socket and hands it each relay frame in order (the frame's CRC and sequence are checked as it is decoded). When
 * the source half-closes, it waits for the clone's QEMU to report the migration completed. Any error fails the
 * stream, and the caller discards the half-built clone.
 */
import { performance } from 'node:perf_hooks';
import { FailedPreconditionError, InvalidArgumentError, type Logger } from '../../../shared/src/mod.js';
import type { MigrationFrame__Output } from '../../../shared/src/gen/doppel/v1/MigrationFrame.js';
import type { MigrationSummary } from '../../../shared/src/gen/doppel/v1/MigrationSummary.js';
import type { DriverVm } from '../drivers/driver.js';
import { acceptMigration, finishIncoming, type IncomingMigration } from '../drivers/qemu/qemu-clone.js';
import { MAX_FRAME_WIRE_BYTES } from '../drivers/qemu/migration-frames.js';
import { QemuVm } from '../drivers/qemu/qemu-vm.js';

export interface MigrationTarget {
  /** Undefined only for a probe, which a migration stream never is. */
  vm: DriverVm | undefined;
}

export class MigrationStreamReceiver {
  private vm: QemuVm | undefined;
  private incoming: IncomingMigration | undefined;
  private jobIdSeen = '';
  frames = 0;
  private wireBytes = 0;

  constructor(
    private readonly resolveTarget: (open: { jobId: string; targetVmId: string }) => MigrationTarget,
    private readonly log: Logger,
  ) {}

  get targetVm(): DriverVm | undefined {
    return this.vm;
  }

  get jobId(): string {
    return this.jobIdSeen;
  }

  /**
   * Aborts with the destination's error when the clone's QEMU went away before the stream ended (it died, or
   * refused the stream): the caller fails the stream at once instead of waiting for the source's next frame.
   */
  get signal(): AbortSignal | undefined {
    return this.incoming?.signal;
  }

  /** Handles one frame; resolves once a data frame's bytes are handed to the clone's QEMU (backpressure). */
  async onFrame(frame: MigrationFrame__Output): Promise<void> {
    if (frame.kind === 'open') {
      if (this.vm) throw new InvalidArgumentError('a migration stream opens once');
      const open = frame.open;
      if (!open || !open.jobId || !open.targetVmId) throw new InvalidArgumentError('the migration stream opening names no job or clone');
      const { vm } = this.resolveTarget(open);
      this.jobIdSeen = open.jobId;
      if (!vm) throw new InvalidArgumentError(`no clone '${open.targetVmId}' for job ${open.jobId}`);
      if (!(vm instanceof QemuVm)) throw new FailedPreconditionError(`clone ${vm.id} is not a qemu VM: a migration stream feeds only the qemu driver's clones`);
      this.vm = vm;
      this.incoming = await acceptMigration(vm, { logger: this.log });
      this.log.debug({ vm: vm.id, socket: this.incoming.socketPath }, 'incoming migration started');
      return;
    }
    if (frame.kind !== 'data' || !frame.data) throw new InvalidArgumentError(`unexpected migration frame '${frame.kind ?? 'none'}'`);
    if (!this.incoming) throw new InvalidArgumentError('the migration stream must open before its data');
    if (frame.data.length > MAX_FRAME_WIRE_BYTES) throw new InvalidArgumentError(`a migration frame of ${frame.data.length} bytes is over the ${MAX_FRAME_WIRE_BYTES}-byte limit`);
    this.signal?.throwIfAborted();
    await this.incoming.feed.write(frame.data);
    this.frames++;
    this.wireBytes += frame.data.length;
  }

  /** The source half-closed: the last bytes go to QEMU, which must then report the migration completed. */
  async finish(): Promise<MigrationSummary> {
    const { vm, incoming } = this;
    if (!vm || !incoming) throw new InvalidArgumentError('the migration stream ended before it opened');
    const stats = await incoming.feed.end();
    const t0 = performance.now();
    await finishIncoming(vm, incoming);
    return { frames: this.frames, bytesRaw: stats.rawBytes, bytesWire: this.wireBytes, landMs: performance.now() - t0 };
  }

  /** The stream failed: the clone's QEMU loses its incoming connection (its migration fails). */
  abort(reason: Error): void {
    this.incoming?.feed.destroy(reason);
  }
}
