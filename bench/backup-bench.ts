/**
 * Backup figures for `npm run bench`: full-backup throughput over data, zero and
 * sparse regions; incremental cost against the amount changed and the disk size;
 * the deduplication ratio of two VMs of one image.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Backup } from '../cli/src/client.js';
import { DISK_BLOCK_SIZE, isAllZero } from '../shared/src/mod.js';
import { writeImage } from '../agent/src/drivers/sim/disk-image.js';
import type { LayerFile } from '../agent/src/drivers/sim/layer-io.js';

const MIB = 2 ** 20;

/**
 * The non-zero bytes of an image's content: what an upload hashes, compresses
 * and sends, where "read" also counts the holes and zero blocks inside the
 * chunks it reads. Generated in memory, as the sim driver writes the image.
 */
function nonZeroBytes(image: string, sizeBytes: number): number {
  let n = 0;
  const layer = {
    blockSize: DISK_BLOCK_SIZE,
    write(_pos: number, data: Buffer, from = 0, len = data.length - from) {
      for (let at = from; at < from + len; at += DISK_BLOCK_SIZE) if (!isAllZero(data.subarray(at, at + DISK_BLOCK_SIZE))) n += DISK_BLOCK_SIZE;
    },
    record() {},
  } as unknown as LayerFile;
  writeImage(layer, image, Math.ceil(sizeBytes / DISK_BLOCK_SIZE));
  return n;
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
}

async function backupOf(fleet: LocalFleet, vm: string, incremental = false): Promise<Backup> {
  const c = fleet.client;
  const job = await c.waitJob((await c.backup({ vm, direct: true, incremental })).id, undefined, 600_000);
  if (job.state !== 'completed' || !job.backup?.result) throw new Error(`bench backup failed: ${job.error}`);
  return job.backup.result;
}

/** Full backups in a process-mode fleet: the agent and the repository (in the coordinator) each in their own process. */
async function throughput(diskMib: number): Promise<Record<string, unknown>[]> {
  const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: 4096 });
  const out: Record<string, unknown>[] = [];
  try {
    const c = fleet.client;
    const w = [30, 10, 12, 12, 12, 14];
    console.log(`\nfull backup throughput (direct, ${diskMib} MiB disks; agent and repository in separate processes)`);
    console.log(`(read: the chunks that hold any data, holes and zero blocks inside them included; non-zero: the data in them)`);
    console.log(row(['region', 'MiB', 'read MB/s', 'stored MiB', 'upload ms', 'non-zero MB/s'], w));
    for (const [label, image] of [
      ['data (image, non-zero part)', 'bench-img'],
      ['sparse (never written)', ''],
    ] as const) {
      const vm = await c.createVm({ name: `tp-${out.length}`, host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: diskMib, image }] });
      const b = await backupOf(fleet, vm.id);
      const s = b.stats!;
      // Non-zero data is what was read and hashed; the rest of the disk was zero or holes.
      const mbps = image ? s.bytesRead / s.uploadMs / 1e3 : (diskMib * MIB) / s.uploadMs / 1e3;
      const nonZero = image ? nonZeroBytes(image, diskMib * MIB) : 0;
      const nonZeroMBps = nonZero / s.uploadMs / 1e3;
      out.push({ region: label, diskMib, readMBps: mbps, bytesRead: s.bytesRead, bytesNonZero: nonZero, nonZeroMBps, bytesStored: s.bytesStored, uploadMs: s.uploadMs, chunksZero: s.chunksZero });
      console.log(
        row([label, image ? (s.bytesRead / MIB).toFixed(0) : diskMib, mbps.toFixed(0), (s.bytesStored / MIB).toFixed(0), s.uploadMs.toFixed(0), image ? nonZeroMBps.toFixed(0) : '-'], w),
      );
    }
  } finally {
    await fleet.stop();
  }
  return out;
}

/** Zero-filled (allocated) regions and incremental cost need the driver: an in-process fleet. */
async function incrementals(): Promise<{ zero: Record<string, unknown>; rows: Record<string, unknown>[] }> {
  const fleet = await LocalFleet.start({ mode: 'in-process', agentMemoryMib: 4096 });
  const rows: Record<string, unknown>[] = [];
  let zero: Record<string, unknown> = {};
  try {
    const c = fleet.client;
    const agent = fleet.agentObjects.get('host-a')!;
    const write = async (vmId: string, firstBlock: number, bytes: number, fill: (b: Buffer) => void) => {
      const vm = agent.driver.get(vmId)!;
      await vm.suspend();
      const step = 64 * MIB;
      for (let off = 0; off < bytes; off += step) {
        const buf = Buffer.alloc(Math.min(step, bytes - off));
        fill(buf);
        await vm.writeDiskBlocks(0, firstBlock + off / DISK_BLOCK_SIZE, buf);
      }
      await vm.run();
    };
    // Allocated blocks that hold zeros: read, found zero, never stored.
    {
      const vm = await c.createVm({ name: 'zeros', host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: 1024, image: '' }] });
      await write(vm.id, 0, 1024 * MIB, () => undefined);
      const s = (await backupOf(fleet, vm.id)).stats!;
      zero = { region: 'zero-filled (allocated)', diskMib: 1024, readMBps: (1024 * MIB) / s.uploadMs / 1e3, uploadMs: s.uploadMs, bytesStored: s.bytesStored };
    }
    for (const diskMib of [1024, 8192]) {
      const vm = await c.createVm({ name: `inc-${diskMib}`, host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: diskMib, image: '' }] });
      await write(vm.id, 0, 256 * MIB, (b) => b.fill(0x5a));
      await backupOf(fleet, vm.id);
      for (const changedMib of [8, 40, 200]) {
        const seed = rows.length + 1;
        await write(vm.id, 4096, changedMib * MIB, (b) => {
          for (let i = 0; i < b.length; i += 8) b.writeUInt32LE(((i + seed) * 2654435761) >>> 0, i);
        });
        await sleep(50);
        const b = await backupOf(fleet, vm.id, true);
        const s = b.stats!;
        rows.push({ diskMib, changedMib, kind: b.kind, readMib: s.bytesRead / MIB, chunksNew: s.chunksNew, uploadMs: s.uploadMs, msPerChangedMib: s.uploadMs / changedMib });
      }
    }
  } finally {
    await fleet.stop();
  }
  return { zero, rows };
}

async function dedup(): Promise<Record<string, unknown>> {
  const fleet = await LocalFleet.start({ mode: 'in-process', agentMemoryMib: 4096 });
  try {
    const c = fleet.client;
    let logical = 0;
    let stored = 0;
    let read = 0;
    let referenced = 0;
    let unique = 0;
    for (const name of ['web-1', 'web-2', 'web-3']) {
      const vm = await c.createVm({ name, host: 'host-a', memoryMib: 16, workload: { diskWriteRate: 500, pattern: 'hotset', seed: 3 }, disks: [{ name: 'disk0', sizeMib: 256, image: 'web-img' }] });
      await sleep(500);
      const s = (await backupOf(fleet, vm.id)).stats!;
      logical += 256 * MIB;
      read += s.bytesRead;
      stored += s.bytesStored;
      referenced += s.chunksTotal - s.chunksZero;
      unique += s.chunksNew;
    }
    return {
      vms: 3,
      image: 'web-img',
      diskMib: 256,
      logicalMib: logical / MIB,
      readMib: read / MIB,
      storedMib: stored / MIB,
      chunksReferenced: referenced,
      chunksStored: unique,
      dedupRatio: referenced / Math.max(1, unique),
      storedOfRead: stored / Math.max(1, read),
    };
  } finally {
    await fleet.stop();
  }
}

export async function backupBench(): Promise<Record<string, unknown>> {
  const full = await throughput(1024);
  const inc = await incrementals();
  const w = [30, 10, 12, 12, 12, 14];
  console.log(row([String(inc.zero.region), 1024, (inc.zero.readMBps as number).toFixed(0), ((inc.zero.bytesStored as number) / MIB).toFixed(0), (inc.zero.uploadMs as number).toFixed(0), '-'], w));
  console.log('\nincremental backups (direct; cost against the data changed, on two disk sizes)');
  const w2 = [10, 12, 12, 10, 12, 12, 16];
  console.log(row(['disk MiB', 'changed MiB', 'kind', 'read MiB', 'new chunks', 'upload ms', 'ms per MiB chg'], w2));
  for (const r of inc.rows) {
    console.log(
      row([r.diskMib as number, r.changedMib as number, r.kind as string, (r.readMib as number).toFixed(0), r.chunksNew as number, (r.uploadMs as number).toFixed(0), (r.msPerChangedMib as number).toFixed(2)], w2),
    );
  }
  const d = await dedup();
  console.log(
    `\ndeduplication: ${d.vms} VMs of image ${String(d.image)} (${String(d.diskMib)} MiB disks, guests writing): ` +
      `${String(d.chunksReferenced)} non-zero chunks referenced, ${String(d.chunksStored)} stored: dedup ratio ${(d.dedupRatio as number).toFixed(2)}; ` +
      `read ${(d.readMib as number).toFixed(0)} MiB, stored ${(d.storedMib as number).toFixed(1)} MiB with LZ4 (${((d.storedOfRead as number) * 100).toFixed(0)}%)`,
  );
  return { fullBackup: [...full, inc.zero], incremental: inc.rows, dedup: d };
}
