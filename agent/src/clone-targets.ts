/**
 * Clone VMs this host prepared as pre-copy targets, and their life cycle:
 * prepared -> receiving (memory) -> memory -> disks (receiving) -> received.
 * A failed or abandoned stream destroys the half-built clone, so a failure
 * never leaves a VM that looks complete.
 */
import {
  AbortedError,
  InvalidArgumentError,
  NotFoundError,
  type Logger,
  PermissionDeniedError,
} from '../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver } from './drivers/driver.js';
import type { StreamOpen__Output } from '../../shared/src/gen/doppel/v1/StreamOpen.js';
import type { DiskCopyOpen__Output } from '../../shared/src/gen/doppel/v1/DiskCopyOpen.js';
import type { ReceiveTarget } from './precopy/receiver.js';

export type TargetState = 'prepared' | 'receiving' | 'memory' | 'disks' | 'received';
/** States in which a clone is not complete yet: it may neither run nor be destroyed by hand. */
export const INCOMPLETE_STATES: readonly TargetState[] = ['prepared', 'receiving', 'memory', 'disks'];

interface Entry {
  jobId: string;
  vm: DriverVm;
  sourceHost: string;
  state: TargetState;
  timer: NodeJS.Timeout | undefined;
}

export class CloneTargets {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly driver: HypervisorDriver,
    private readonly log: Logger,
    /** A prepared clone that no stream claims within this time is removed. */
    private readonly abandonAfterMs = 120_000,
  ) {}

  /** `sourceHost`: the only agent that may stream into this clone or ask for its backup. */
  prepare(jobId: string, vm: DriverVm, sourceHost: string): void {
    this.entries.set(vm.id, { jobId, vm, sourceHost, state: 'prepared', timer: this.abandonTimer(vm.id, 'prepared') });
  }

  /** Only a clone waiting for a stream that never comes is abandoned; a receiving one ends with its stream. */
  private abandonTimer(vmId: string, waiting: TargetState): NodeJS.Timeout {
    const timer = setTimeout(() => {
      if (this.entries.get(vmId)?.state === waiting) this.discard(vmId, `no stream claimed it within ${this.abandonAfterMs} ms (${waiting})`);
    }, this.abandonAfterMs);
    timer.unref();
    return timer;
  }

  /** Binds an opened stream to its prepared clone. Probes get no VM. */
  claim(open: Pick<StreamOpen__Output, 'jobId' | 'targetVmId'> & { probe?: boolean }): ReceiveTarget {
    if (open.probe) return { vm: undefined };
    const e = this.entries.get(open.targetVmId);
    if (!e) throw new NotFoundError(`no clone target '${open.targetVmId}' is prepared on this host`);
    if (e.jobId !== open.jobId) {
      throw new InvalidArgumentError(`clone target '${open.targetVmId}' belongs to job ${e.jobId}, not ${open.jobId}`);
    }
    if (e.state !== 'prepared') throw new AbortedError(`clone target '${open.targetVmId}' is already ${e.state}`);
    e.state = 'receiving';
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    return { vm: e.vm };
  }

  stateOf(vmId: string): TargetState | undefined {
    return this.entries.get(vmId)?.state;
  }

  /** Marks a clone's memory complete (its disks come next); false if it is gone (destroyed meanwhile): then the stream must fail. */
  complete(vmId: string): boolean {
    const e = this.entries.get(vmId);
    if (!e || e.state !== 'receiving') return false;
    e.state = 'memory';
    e.timer = this.abandonTimer(vmId, 'memory');
    return true;
  }

  /** Binds a disk stream to a clone whose memory arrived. */
  claimDisks(open: DiskCopyOpen__Output): DriverVm {
    const e = this.entries.get(open.targetVmId);
    if (!e) throw new NotFoundError(`no clone target '${open.targetVmId}' is waiting for its disks on this host`);
    if (e.jobId !== open.jobId) throw new InvalidArgumentError(`clone target '${open.targetVmId}' belongs to job ${e.jobId}, not ${open.jobId}`);
    if (e.state !== 'memory') throw new AbortedError(`clone target '${open.targetVmId}' is ${e.state}, not waiting for its disks`);
    e.state = 'disks';
    if (e.timer) clearTimeout(e.timer);
    e.timer = undefined;
    return e.vm;
  }

  /** Marks a clone complete once its disks arrived; false if it is gone. */
  completeDisks(vmId: string): boolean {
    const e = this.entries.get(vmId);
    if (!e || e.state !== 'disks') return false;
    e.state = 'received';
    e.vm.markComplete();
    return true;
  }

  /** A clone whose memory arrived (verification works before its disks are there). */
  received(jobId: string, vmId: string): DriverVm {
    const e = this.entries.get(vmId);
    if (!e || e.jobId !== jobId || !['memory', 'disks', 'received'].includes(e.state)) {
      throw new NotFoundError(`no clone '${vmId}' with its memory received for job ${jobId} on this host`);
    }
    return e.vm;
  }

  /** A complete clone of this job (memory and disks), for the backup that runs on it. */
  /** A received clone of a job; `from` (an agent asking, null for the coordinator) must be its source host. */
  completed(jobId: string, vmId: string, from: string | null = null): DriverVm {
    const e = this.entries.get(vmId);
    if (!e || e.jobId !== jobId || e.state !== 'received') throw new NotFoundError(`no completed clone '${vmId}' for job ${jobId} on this host`);
    if (from !== null && from !== e.sourceHost) throw new PermissionDeniedError(`host '${from}' is not the source of clone '${vmId}' (job ${jobId})`);
    return e.vm;
  }

  /** A completed clone leaves the table once it runs or is destroyed. */
  release(vmId: string): void {
    const e = this.entries.get(vmId);
    if (e?.timer) clearTimeout(e.timer);
    this.entries.delete(vmId);
  }

  discard(vmId: string, why: string): void {
    const e = this.entries.get(vmId);
    if (!e) return;
    this.release(vmId);
    this.log.warn({ vmId, jobId: e.jobId, why }, 'discarding incomplete clone');
    this.driver.destroy(vmId).catch((err: unknown) => this.log.error({ err, vmId }, 'could not destroy incomplete clone'));
  }

  close(): void {
    for (const e of this.entries.values()) if (e.timer) clearTimeout(e.timer);
    this.entries.clear();
  }
}
