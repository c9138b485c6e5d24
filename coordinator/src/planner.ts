/**
 * Clone planning: the pre-copy threshold, the convergence prediction and the
 * choice of target host. Pure functions, so the rules are easy to test and to
 * read in one place.
 */
import { PAGE_SIZE, ResourceExhaustedError, stopReason, type HostRecord } from '../../shared/src/mod.js';

/** Fixed cost of a switchover beyond sending pages: the suspend handshake, state, the target's ack. */
export const SWITCHOVER_OVERHEAD_MS = 5;
/** Plan to use this share of the allowed downtime, to absorb bandwidth noise. */
export const DOWNTIME_BUDGET_SHARE = 0.6;

export interface PlanInput {
  pageCount: number;
  bandwidthBytesPerS: number;
  dirtyPagesPerS: number;
  maxDowntimeMs: number;
  maxRounds: number;
}

export interface Prediction {
  thresholdPages: number;
  converges: boolean;
  rounds: number;
  stopReason: string;
  downtimeMs: number;
}

/** Pages that can be sent within the downtime budget at the measured bandwidth. */
export function thresholdPages(bandwidthBytesPerS: number, maxDowntimeMs: number): number {
  const budgetMs = maxDowntimeMs * DOWNTIME_BUDGET_SHARE - SWITCHOVER_OVERHEAD_MS;
  return Math.max(1, Math.floor((budgetMs / 1000) * (bandwidthBytesPerS / PAGE_SIZE)));
}

/**
 * Simulates the rounds: each round takes (pages / bandwidth) seconds, during
 * which the guest dirties `dirtyPagesPerS * seconds` pages (at most all of them).
 * The stop rule is the agent's own (`stopReason`).
 */
export function predict(input: PlanInput): Prediction {
  const bw = input.bandwidthBytesPerS / PAGE_SIZE;
  const threshold = thresholdPages(input.bandwidthBytesPerS, input.maxDowntimeMs);
  const history: number[] = [input.pageCount];
  let x = input.pageCount;
  for (;;) {
    const dirty = Math.min(input.pageCount, (input.dirtyPagesPerS * x) / bw);
    const reason = stopReason(history, dirty, threshold, input.maxRounds);
    if (reason) {
      return {
        thresholdPages: threshold,
        converges: reason === 'converged',
        rounds: history.length,
        stopReason: reason,
        downtimeMs: (dirty / bw) * 1000 + SWITCHOVER_OVERHEAD_MS,
      };
    }
    history.push(dirty);
    x = dirty;
  }
}

export function freeMemoryMib(h: HostRecord): number {
  return h.capacity.memoryMib - h.usedMemoryMib;
}

/** Why a host cannot take a VM of this size, or '' if it can. */
export function roomProblem(h: HostRecord, memoryMib: number): string {
  if (h.state !== 'up') return `host '${h.name}' is down`;
  const free = freeMemoryMib(h);
  if (free < memoryMib) return `host '${h.name}' lacks room: needs ${memoryMib} MiB, has ${free} MiB free`;
  if (h.vms.length >= h.capacity.maxVms) return `host '${h.name}' already runs its maximum of ${h.capacity.maxVms} VMs`;
  return '';
}

/** The up host with the most free memory that can take the VM, other than `exclude`. */
export function pickHost(hosts: readonly HostRecord[], memoryMib: number, exclude: string): HostRecord {
  const fit = hosts
    .filter((h) => h.name !== exclude && roomProblem(h, memoryMib) === '')
    .sort((a, b) => freeMemoryMib(b) - freeMemoryMib(a));
  const best = fit[0];
  if (!best) {
    const others = hosts.filter((h) => h.name !== exclude);
    const why = others.map((h) => roomProblem(h, memoryMib)).filter(Boolean);
    throw new ResourceExhaustedError(
      `no host has room for a ${memoryMib} MiB VM` + (why.length ? `: ${why.join('; ')}` : ' (no other host is registered)'),
    );
  }
  return best;
}
