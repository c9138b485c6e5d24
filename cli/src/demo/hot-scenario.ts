/**
 * Scenario `hot-clone` (seed 004): a VM writing memory and disk on host-a is
 * cloned to host-b, which shares its datastore, without ever being suspended:
 * its disks and memory are frozen (slowest level first), the frozen image goes
 * to host-b while the guest's writes are buffered, the buffer is merged back,
 * and the clone overlays the frozen disk with its own identity. The clone then
 * runs, and what each VM holds on the shared datastore is shown.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { InternalError } from '../../../shared/src/mod.js';
import type { LocalFleet } from '../fleet/local-fleet.js';
import { Progress } from '../output.js';
import { createDemoVm, type DemoArgs } from './clone-scenario.js';

const MiB = 1024 * 1024;

export async function hotScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const { vm, pattern, say } = await createDemoVm(fleet, a);
  say(`created ${vm.name} (${vm.id}) on host-a: ${a.vmMemoryMib} MiB, guest writing ${a.dirtyRate} pages/s (${pattern}) and ${a.diskWriteRate} disk blocks/s`);
  await sleep(500);
  say('hot-cloning it to host-b (same datastore): freeze, copy the frozen image, merge the buffered writes, link the disks…');
  const started = await c.clone({ vm: vm.id, targetHost: 'host-b', hot: true, verify: true, cloneName: 'demo-vm-hot', hostname: 'demo-vm-hot' });
  const bar = new Progress();
  const job = await c.waitJob(started.id, (j) => bar.update(`${j.state} · ${j.phase}`));
  bar.done();
  if (job.state !== 'completed' || !job.hot) throw new InternalError(`hot clone job ${job.id} ${job.state}: ${job.error}`);
  const h = job.hot;
  for (const l of h.levels) say(`  froze ${l.level.padEnd(4)} +${l.offsetMs.toFixed(3)} ms  ${l.what}`);
  say(
    `memory: ${(Number(h.memoryBytesRaw) / MiB).toFixed(0)} MiB copied as ${(Number(h.memoryBytesWire) / MiB).toFixed(1)} MiB in ${h.memoryCopyMs.toFixed(0)} ms; ` +
      `the guest made ${h.bufferedWrites} writes into the buffer meanwhile, ${h.mergedWrites} merged back`,
  );
  say(`source stall: ${h.sourceStallMs.toFixed(2)} ms in all (longest ${h.maxStallMs.toFixed(2)} ms); suspended: ${h.sourceSuspended}`);
  say(`clone memory ${h.cloneHash.slice(0, 16)}… vs frozen image ${h.frozenHash.slice(0, 16)}… (${h.cloneHash === h.frozenHash ? 'equal' : 'DIFFERENT'})`);

  const clone = await c.runVm(job.plan!.targetVm);
  await sleep(1000);
  const [cloneStore, sourceStore] = await Promise.all([c.vmStorage(clone.id), c.vmStorage(vm.id)]);
  say(
    `shared base ${(Number(h.sharedBaseBytes) / MiB).toFixed(1)} MiB; after 1 s of running, the clone holds ${(Number(cloneStore.ownBytes) / MiB).toFixed(2)} MiB of its own ` +
      `and the source ${(Number(sourceStore.ownBytes) / MiB).toFixed(2)} MiB of its own`,
  );
  const source = (await c.vms('host-a')).find((v) => v.id === vm.id);
  say(`identity: source ${vm.hostname} ${vm.mac} ${vm.uuid}; clone ${clone.hostname} ${clone.mac} ${clone.uuid}`);

  const result = {
    vm: { id: vm.id, host: vm.host, memoryMib: vm.memoryMib, dirtyRate: a.dirtyRate, diskWriteRate: a.diskWriteRate, pattern, seed: a.seed },
    hot: {
      jobId: job.id,
      cloneVm: clone.id,
      cloneHost: clone.host,
      cloneState: clone.state,
      sourceState: source?.state ?? 'unknown',
      frozenHash: h.frozenHash,
      cloneHash: h.cloneHash,
      hashesEqual: h.frozenHash !== '' && h.cloneHash === h.frozenHash,
      levels: h.levels.map((l) => ({ level: l.level, offsetMs: l.offsetMs })),
      bufferedWrites: Number(h.bufferedWrites),
      mergedWrites: Number(h.mergedWrites),
      sourceStallMs: h.sourceStallMs,
      maxStallMs: h.maxStallMs,
      sourceSuspended: h.sourceSuspended,
      frozenMs: h.frozenMs,
      mergeMs: h.mergeMs,
      memoryBytesRaw: Number(h.memoryBytesRaw),
      memoryBytesWire: Number(h.memoryBytesWire),
      memoryCopyMs: h.memoryCopyMs,
      diskLinked: h.diskLinked,
      sharedBaseBytes: Number(h.sharedBaseBytes),
      cloneOverlayBytes: Number(cloneStore.ownBytes),
      cloneSharedBytes: Number(cloneStore.sharedBytes),
      sourceOverlayBytes: Number(sourceStore.ownBytes),
      sourceMac: vm.mac,
      cloneMac: clone.mac,
      sourceUuid: vm.uuid,
      cloneUuid: clone.uuid,
      sourceHostname: vm.hostname,
      cloneHostname: clone.hostname,
      sourceMachineId: vm.machineId,
      cloneMachineId: clone.machineId,
      totalMs: h.totalMs,
    },
  };
  const ok =
    result.hot.hashesEqual &&
    !h.sourceSuspended &&
    result.hot.mergedWrites === result.hot.bufferedWrites &&
    h.diskLinked &&
    clone.state === 'running' &&
    source?.state === 'running' &&
    vm.mac !== clone.mac &&
    vm.uuid !== clone.uuid &&
    vm.machineId !== clone.machineId &&
    Number(cloneStore.sharedBytes) === Number(h.sharedBaseBytes);
  return { ok, ...result };
}
