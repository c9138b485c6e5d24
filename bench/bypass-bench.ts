/**
 * Bypass-consistent backup figures for `npm run bench` (seed 001): the time of
 * the revert step (the image backup taken back from t2 to t1) as a function of
 * the image blocks the guest wrote between the two snapshots, and the guest's
 * pause for the t1 fence. Agents in their own processes; the array in this one.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';

export interface BypassFigures {
  diskWriteRate: number;
  blocksReverted: number;
  revertMs: number;
  msPerBlock: number;
  fenceMs: number;
  backupMs: number;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i] ?? 10)).join(' ');
}

export async function bypassBench(): Promise<BypassFigures[]> {
  console.log('\nbypass-consistent backup (seed 001): revert time by image blocks written between t1 and t2 (1 GiB disk, 256 MiB bypass volume)');
  const w = [16, 16, 11, 12, 10, 11];
  console.log(row(['disk writes/s', 'blocks reverted', 'revert ms', 'ms / block', 'fence ms', 'backup ms'], w));
  const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: 2048, array: true });
  const out: BypassFigures[] = [];
  try {
    const c = fleet.client;
    for (const diskWriteRate of [0, 100, 1000, 5000]) {
      const vm = await c.createVm({
        name: `bypass-bench-${diskWriteRate}`,
        host: 'host-a',
        memoryMib: 64,
        workload: { dirtyRate: 1000, pattern: 'uniform', seed: 5, diskWriteRate, tokenRate: 100, bypassWriteRate: 100 },
        disks: [{ name: 'disk0', sizeMib: 1024, image: 'base' }],
        bypass: [{ name: 'data', sizeMib: 256 }],
      });
      await sleep(500);
      const t0 = performance.now();
      const job = await c.waitJob((await c.backup({ vm: vm.id })).id);
      const backupMs = performance.now() - t0;
      if (job.state !== 'completed' || !job.backup?.result?.bypass) throw new Error(`bench bypass backup failed: ${job.error}`);
      const b = job.backup.result.bypass;
      const f: BypassFigures = {
        diskWriteRate,
        blocksReverted: Number(b.blocksReverted),
        revertMs: b.revertMs,
        msPerBlock: Number(b.blocksReverted) > 0 ? b.revertMs / Number(b.blocksReverted) : 0,
        fenceMs: b.fenceMs,
        backupMs,
      };
      out.push(f);
      console.log(row([diskWriteRate, f.blocksReverted, f.revertMs.toFixed(0), f.msPerBlock.toFixed(2), f.fenceMs.toFixed(1), f.backupMs.toFixed(0)], w));
      await c.destroyVm(vm.id);
    }
  } finally {
    await fleet.stop();
  }
  console.log('  the revert re-makes each 4 MiB chunk that holds a reverted block: its other blocks come from the t2 image, only the reverted ones from t1');
  return out;
}
