/**
 * Scenario `clone`: create a VM with a running workload on host-a, live-clone it
 * to host-b by iterative pre-copy, check the clone's memory equals the source's
 * at suspension (by hash), and run the clone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError, WORKLOAD_PATTERNS, requireOneOf, type WorkloadPattern } from '../../../shared/src/mod.js';
import type { Job, VM } from '../client.js';
import type { LocalFleet } from '../fleet/local-fleet.js';
import { Progress } from '../output.js';
import { printJob } from '../commands/api.js';

export interface DemoArgs {
  vmMemoryMib: number;
  diskMib: number;
  dirtyRate: number;
  diskWriteRate: number;
  pattern: string;
  seed: number;
  maxDowntimeMs: number;
  quiet: boolean;
}

/** The demo's VM on host-a, with its memory and disk workload, and the scenario's `say`. */
export async function createDemoVm(fleet: LocalFleet, a: DemoArgs): Promise<{ vm: VM; pattern: WorkloadPattern; say: (s: string) => void }> {
  const pattern = requireOneOf('pattern', a.pattern, WORKLOAD_PATTERNS);
  const vm = await fleet.client.createVm({
    name: 'demo-vm',
    host: 'host-a',
    memoryMib: a.vmMemoryMib,
    vcpus: 2,
    workload: { dirtyRate: a.dirtyRate, pattern, seed: a.seed, diskWriteRate: a.diskWriteRate },
    disks: [{ name: 'disk0', sizeMib: a.diskMib, image: 'base' }],
  });
  return { vm, pattern, say: (s) => (a.quiet ? undefined : console.log(s)) };
}

export async function cloneScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const { vm, pattern, say } = await createDemoVm(fleet, a);
  say(`created ${vm.name} (${vm.id}) on ${vm.host}: ${a.vmMemoryMib} MiB, guest writing ${a.dirtyRate} pages/s (${pattern})`);
  await sleep(500);
  say(`live-cloning ${vm.name} to host-b (max downtime ${a.maxDowntimeMs} ms)…`);
  const started = await c.clone({ vm: vm.id, targetHost: 'host-b', maxDowntimeMs: a.maxDowntimeMs, verify: true, cloneName: 'demo-vm-clone' });
  const bar = new Progress();
  const job = await c.waitJob(started.id, (j) => bar.update(`${j.state} · round ${j.currentRound} · ${j.lastRoundPages} pages`));
  bar.done();
  if (!a.quiet) printJob(job);
  if (job.state !== 'completed' || !job.stats) throw new InternalError(`clone job ${job.id} ${job.state}: ${job.error}`);
  const s = job.stats;
  const cloneVm = await c.runVm(job.plan!.targetVm);
  say(`clone ${cloneVm.name} (${cloneVm.id}) is now ${cloneVm.state} on ${cloneVm.host}; the source kept running`);
  // The VM list comes from heartbeats; give the registry a moment to show the resumed source.
  let source = (await c.vms('host-a')).find((v) => v.id === vm.id);
  for (let i = 0; i < 30 && source?.state !== 'running'; i++) {
    await sleep(100);
    source = (await c.vms('host-a')).find((v) => v.id === vm.id);
  }
  const hashesEqual = s.sourceHash !== '' && s.sourceHash === s.cloneHash;
  return {
    ok: hashesEqual && cloneVm.state === 'running' && source?.state === 'running',
    vm: { id: vm.id, host: vm.host, memoryMib: vm.memoryMib, dirtyRate: a.dirtyRate, pattern, seed: a.seed },
    plan: job.plan,
    clone: {
      jobId: job.id,
      ...cloneFigures(s),
      hashesEqual,
      cloneVm: cloneVm.id,
      cloneHost: cloneVm.host,
      cloneState: cloneVm.state,
      sourceState: source?.state ?? 'unknown',
    },
  };
}

/** A live clone's figures as the demos' JSON gives them (`clone.*`). */
export function cloneFigures(s: NonNullable<Job['stats']>) {
  return {
    rounds: s.rounds,
    pagesPerRound: s.pagesPerRound,
    bytesRaw: s.bytesRaw,
    bytesWire: s.bytesWire,
    compressionRatio: s.bytesWire / Math.max(1, s.bytesRaw),
    downtimeMs: s.downtimeMs,
    totalMs: s.totalMs,
    verifyMs: s.verifyMs,
    converged: s.converged,
    stopReason: s.stopReason,
    sourceHash: s.sourceHash,
    cloneHash: s.cloneHash,
  };
}
