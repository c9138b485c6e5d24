/**
 * Hot clone figures for `npm run bench` (seed 004): on the same VM and workload, the
 * pre-copy clone's downtime (source suspended to resumed) next to the hot clone's
 * source stall (time the guest could not write: the freeze step, the merge steps,
 * waits on a full buffer). Agents in their own processes on a shared datastore.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';

export interface HotFigures {
  memoryMib: number;
  dirtyRate: number;
  precopyDowntimeMs: number;
  precopyRounds: number;
  precopyTotalMs: number;
  hotStallMs: number;
  hotMaxStallMs: number;
  hotFrozenMs: number;
  hotMergeMs: number;
  hotBufferedWrites: number;
  hotTotalMs: number;
  hotSourceSuspended: boolean;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i] ?? 10)).join(' ');
}

export async function hotBench(memoryMib: number): Promise<HotFigures[]> {
  console.log(`\nhot clone (seed 004) vs pre-copy clone on the same VM (${memoryMib} MiB, hot-set writes, shared datastore)`);
  const w = [13, 15, 8, 14, 13, 11, 11, 10, 10, 11];
  console.log(row(['dirty pages/s', 'pre-copy down', 'rounds', 'pre-copy total', 'hot stall ms', 'longest ms', 'frozen ms', 'merge ms', 'buffered', 'hot total'], w));
  const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: memoryMib * 4, sharedDatastore: true });
  const out: HotFigures[] = [];
  try {
    const c = fleet.client;
    for (const dirtyRate of [5_000, 20_000, 50_000]) {
      const vm = await c.createVm({
        name: `hot-bench-${dirtyRate}`,
        host: 'host-a',
        memoryMib,
        vcpus: 2,
        workload: { dirtyRate, pattern: 'hotset', seed: 3, diskWriteRate: 200 },
      });
      await sleep(500);
      const pre = await c.waitJob((await c.clone({ vm: vm.id, targetHost: 'host-b', maxDowntimeMs: 300, onNonConvergence: 'warn' })).id);
      if (pre.state !== 'completed' || !pre.stats) throw new Error(`bench pre-copy clone failed: ${pre.error}`);
      await c.destroyVm(pre.plan!.targetVm);
      await sleep(1000); // the registry sees the source running again
      const hot = await c.waitJob((await c.clone({ vm: vm.id, targetHost: 'host-b', hot: true })).id);
      if (hot.state !== 'completed' || !hot.hot) throw new Error(`bench hot clone failed: ${hot.error}`);
      await c.destroyVm(hot.plan!.targetVm);
      await c.destroyVm(vm.id);
      const s = pre.stats;
      const h = hot.hot;
      const f: HotFigures = {
        memoryMib,
        dirtyRate,
        precopyDowntimeMs: s.downtimeMs,
        precopyRounds: s.rounds,
        precopyTotalMs: s.totalMs,
        hotStallMs: h.sourceStallMs,
        hotMaxStallMs: h.maxStallMs,
        hotFrozenMs: h.frozenMs,
        hotMergeMs: h.mergeMs,
        hotBufferedWrites: Number(h.bufferedWrites),
        hotTotalMs: h.totalMs,
        hotSourceSuspended: h.sourceSuspended,
      };
      out.push(f);
      console.log(
        row(
          [
            dirtyRate,
            f.precopyDowntimeMs.toFixed(1),
            f.precopyRounds,
            f.precopyTotalMs.toFixed(0),
            f.hotStallMs.toFixed(2),
            f.hotMaxStallMs.toFixed(2),
            f.hotFrozenMs.toFixed(0),
            f.hotMergeMs.toFixed(0),
            f.hotBufferedWrites,
            f.hotTotalMs.toFixed(0),
          ],
          w,
        ),
      );
    }
  } finally {
    await fleet.stop();
  }
  console.log('  pre-copy down: the source suspended to resumed; hot stall: the time the source guest could not write (it never suspends);');
  console.log('  frozen: its writes went to the buffer (the image copy); merge: the buffer merged back while the guest ran on');
  return out;
}
