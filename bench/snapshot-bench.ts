/**
 * Snapshot-pair figures for `npm run bench` (seed 002): how long a storage
 * snapshot takes on disks of 1 GiB and 8 GiB full of image data while the guest
 * writes, end to end through the coordinator (pair and storage-only) and as the
 * host measures its freeze. O(1): no data is copied, so the size must not show.
 */
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';

export interface SnapshotFigures {
  diskMib: number;
  /** Median of the host's freeze (ms). */
  freezeMs: number;
  /** Median guest pause for a pair (ms). */
  pairPauseMs: number;
  /** Median end-to-end time of a pair / of a storage-only snapshot through the API (ms). */
  pairMs: number;
  storageOnlyMs: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

export async function snapshotBench(): Promise<SnapshotFigures[]> {
  console.log('\nsnapshot pairs (seed 002): storage snapshot latency by disk size (5 of each, medians; guest writing)');
  const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: 2048 });
  const out: SnapshotFigures[] = [];
  try {
    const c = fleet.client;
    for (const diskMib of [1024, 8192]) {
      const vm = await c.createVm({
        name: `snap-${diskMib}`,
        host: 'host-a',
        memoryMib: 64,
        workload: { dirtyRate: 2000, pattern: 'hotset', seed: 7, diskWriteRate: 500 },
        disks: [{ name: 'disk0', sizeMib: diskMib, image: 'base' }],
      });
      const freeze: number[] = [];
      const pause: number[] = [];
      const pairMs: number[] = [];
      const updateMs: number[] = [];
      for (let i = 0; i < 5; i++) {
        let t0 = performance.now();
        const p = await c.createSnapshot(vm.name);
        pairMs.push(performance.now() - t0);
        freeze.push(p.storage!.createMs);
        pause.push(p.pauseMs);
        t0 = performance.now();
        const u = await c.createSnapshot(vm.name, true);
        updateMs.push(performance.now() - t0);
        freeze.push(u.storage!.createMs);
      }
      const f: SnapshotFigures = { diskMib, freezeMs: median(freeze), pairPauseMs: median(pause), pairMs: median(pairMs), storageOnlyMs: median(updateMs) };
      out.push(f);
      console.log(
        `  ${String(diskMib / 1024).padStart(2)} GiB disk: host freeze ${f.freezeMs.toFixed(1)} ms, guest pause for a pair ${f.pairPauseMs.toFixed(1)} ms, ` +
          `pair ${f.pairMs.toFixed(0)} ms end to end (incl. a 250 ms resource sample), storage-only ${f.storageOnlyMs.toFixed(0)} ms`,
      );
      for (const s of (await c.snapshots(vm.name)).storage.reverse()) await c.deleteSnapshot(s.id);
      await c.destroyVm(vm.id);
    }
  } finally {
    await fleet.stop();
  }
  return out;
}
