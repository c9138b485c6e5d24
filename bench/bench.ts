/**
 * `npm run bench`: page-stream throughput, compression, and rounds/downtime at
 * three dirty rates, on a private local fleet whose agents run in their own
 * processes (as on real hosts); then backup throughput, incremental cost and
 * deduplication (bench/backup-bench.ts); then hot clones, bypass backups, and QEMU's own migration against a
 * tunnelled clone of a real guest (bench/qemu-bench.ts). Prints tables; checks nothing, fails nothing.
 *
 *   --vm-memory-mib N   guest size (default 1024)
 *   --only clone|backup|snapshot|hot|bypass|qemu  run one part
 *   --qemu-mem-mib N    the qemu part's guest size (default 512)
 *   --qemu-rate N       pages per second the qemu part's guest dirties (default 20000)
 *   --json              also print one JSON line with every figure
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { CoordinatorClient, Job } from '../cli/src/client.js';
import { connectNats, sendCommand } from '../shared/src/mod.js';
import { backupBench } from './backup-bench.js';
import { snapshotBench } from './snapshot-bench.js';
import { hotBench } from './hot-bench.js';
import { bypassBench } from './bypass-bench.js';
import { qemuBench } from './qemu-bench.js';

const { values } = parseArgs({
  options: {
    'vm-memory-mib': { type: 'string' },
    only: { type: 'string' },
    json: { type: 'boolean' },
    'qemu-mem-mib': { type: 'string' },
    'qemu-rate': { type: 'string' },
  },
});
const only = values.only ?? '';
if (only && !['clone', 'backup', 'snapshot', 'hot', 'bypass', 'qemu'].includes(only)) throw new Error(`--only must be clone, backup, snapshot, hot, bypass or qemu (got '${only}')`);
const MIB = Number(values['vm-memory-mib'] ?? 1024);
const MAX_DOWNTIME_MS = 300;

interface RoundEvent {
  round: number;
  bytesRaw: number;
  bytesWire: number;
  ms: number;
}

async function roundEvents(c: CoordinatorClient, jobId: string): Promise<RoundEvent[]> {
  const rounds: RoundEvent[] = [];
  await c.events({ all: true }, (e) => {
    if (e.jobId === jobId && e.type === 'clone.round') rounds.push(JSON.parse(e.json) as RoundEvent);
  });
  return rounds;
}

interface AgentMemory {
  host: string;
  peakRssMib: number;
  peakBeyondGuestMib: number;
}

let vmSeq = 0;
/**
 * One clone on a fresh fleet, so each agent's peak RSS covers exactly one guest
 * (a destroyed guest's SharedArrayBuffer is freed only when the GC gets to it).
 */
async function cloneOnce(dirtyRate: number, pattern: string): Promise<{ job: Job; round0: RoundEvent; memory: AgentMemory[] }> {
  const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: MIB * 3 });
  try {
    return await cloneOn(fleet, dirtyRate, pattern);
  } finally {
    await fleet.stop();
  }
}

async function cloneOn(fleet: LocalFleet, dirtyRate: number, pattern: string): Promise<{ job: Job; round0: RoundEvent; memory: AgentMemory[] }> {
  const c = fleet.client;
  const vm = await c.createVm({ name: `bench-${++vmSeq}`, host: 'host-a', memoryMib: MIB, vcpus: 2, workload: { dirtyRate, pattern, seed: vmSeq } });
  await sleep(300);
  const job = await c.waitJob((await c.clone({ vm: vm.id, targetHost: 'host-b', maxDowntimeMs: MAX_DOWNTIME_MS, onNonConvergence: 'warn' })).id);
  if (job.state !== 'completed' || !job.stats) throw new Error(`bench clone failed: ${job.error}`);
  const round0 = (await roundEvents(c, job.id)).find((r) => r.round === 0)!;
  await sleep(600); // one more heartbeat carries the final peak RSS
  const memory = (await c.hosts()).map((h) => {
    const peak = h.agentPeakRssBytes / 2 ** 20;
    return { host: h.name, peakRssMib: peak, peakBeyondGuestMib: peak - MIB };
  });
  return { job, round0, memory };
}

function row(cells: (string | number)[], widths: number[]): string {
  return cells.map((c, i) => String(c).padStart(widths[i]!)).join('  ');
}

const figures: Record<string, unknown> = { vmMemoryMib: MIB };
let loadMemory: AgentMemory[] = [];
if (!only || only === 'clone') {
  console.log(`doppel bench: ${MIB} MiB guest, agents host-a -> host-b in separate processes on loopback\n`);
  const w1 = [22, 12, 12, 10, 8];
  console.log('page-stream throughput (round 0: every page, while the guest runs)');
  console.log(row(['case', 'raw MB/s', 'wire MB/s', 'wire/raw', 'rounds'], w1));
  const throughput: Record<string, unknown>[] = [];
  for (const [label, rate, pattern] of [
    ['idle', 0, 'uniform'],
    ['under load 50k pg/s', 50_000, 'uniform'],
  ] as const) {
    const { job, round0, memory } = await cloneOnce(rate, pattern);
    if (rate > 0) loadMemory = memory;
    const raw = round0.bytesRaw / round0.ms / 1e3;
    const wire = round0.bytesWire / round0.ms / 1e3;
    const ratio = job.stats!.bytesWire / job.stats!.bytesRaw;
    throughput.push({ case: label, rawMBps: raw, wireMBps: wire, ratio, rounds: job.stats!.rounds });
    console.log(row([label, raw.toFixed(0), wire.toFixed(0), ratio.toFixed(3), job.stats!.rounds], w1));
  }
  // The data plane alone: the same stream path (LZ4, CRC, acks) with non-zero pages only and no guest
  // memory to fill on the target, so first-touch page faults of a fresh clone are not in the figure.
  // Once in plaintext and once with mutual TLS (the fleet default outside `doppel up`): the cost of TLS.
  const streamOnly: Record<string, number> = {};
  for (const tls of [false, true]) {
    const fleet = await LocalFleet.start({ mode: 'process', agentMemoryMib: MIB * 3, tls });
    const nc = await connectNats(fleet.nats.url, 'doppel-bench', fleet.natsCreds('coordinator'));
    try {
      const target = (await fleet.client.hosts()).find((h) => h.name === 'host-b')!;
      const probeToken = () => fleet.signStreamToken({ job: 'probe', vm: '', src: 'host-a', dst: 'host-b', dir: 'probe' });
      const { bytesPerSecond } = await sendCommand(
        nc,
        'host-a',
        'link.probe',
        { targetHost: 'host-b', targetAddr: target.dataAddr, bytes: MIB * 2 ** 20, maxBandwidthBytesPerS: 0, tokens: [probeToken(), probeToken()] },
        300_000,
      );
      const raw = bytesPerSecond / 1e6;
      const label = tls ? 'stream only, mutual TLS' : 'stream only (no zeros)';
      streamOnly[tls ? 'tls' : 'plain'] = raw;
      throughput.push({ case: label, rawMBps: raw });
      console.log(row([label, raw.toFixed(0), '', '', ''], w1));
    } finally {
      await nc.close();
      await fleet.stop();
    }
  }
  if (streamOnly.plain && streamOnly.tls) {
    const cost = 1 - streamOnly.tls / streamOnly.plain;
    figures.tlsCost = { plainMBps: streamOnly.plain, tlsMBps: streamOnly.tls, cost };
    console.log(`mutual TLS costs ${(cost * 100).toFixed(1)}% of the page stream's throughput (target: at most 25%)`);
  }
  figures.throughput = throughput;

  // Dirty rates as shares of the bandwidth the planner measured for this link.
  const bwPages = ((throughput[0]!.rawMBps as number) * 1e6) / 4096;
  console.log(`\nrounds and downtime (max downtime ${MAX_DOWNTIME_MS} ms; link ≈ ${Math.round(bwPages)} pages/s)`);
  const w2 = [14, 12, 8, 22, 14, 12, 10];
  console.log(row(['dirty pages/s', 'of bw', 'rounds', 'pages per round', 'downtime ms', 'total ms', 'within'], w2));
  const rates: Record<string, unknown>[] = [];
  for (const share of [0.1, 0.25, 0.5]) {
    const rate = Math.round(bwPages * share);
    const { job } = await cloneOnce(rate, 'uniform');
    const s = job.stats!;
    const within = s.downtimeMs <= MAX_DOWNTIME_MS;
    rates.push({ dirtyRate: rate, share, rounds: s.rounds, pagesPerRound: s.pagesPerRound, downtimeMs: s.downtimeMs, totalMs: s.totalMs, stopReason: s.stopReason, within });
    const ppr = s.pagesPerRound.length > 3 ? `${s.pagesPerRound.slice(0, 3).join(',')},…` : s.pagesPerRound.join(',');
    console.log(row([rate, `${share * 100}%`, s.rounds, ppr, s.downtimeMs.toFixed(1), s.totalMs.toFixed(0), within ? 'yes' : 'NO'], w2));
  }
  figures.dirtyRates = rates;

  console.log('\nagent memory during the clone under load (peak RSS of the agent process; each held one guest)');
  const w3 = [8, 16, 26];
  console.log(row(['host', 'peak RSS MiB', 'peak RSS - guest MiB'], w3));
  for (const m of loadMemory) console.log(row([m.host, m.peakRssMib.toFixed(0), m.peakBeyondGuestMib.toFixed(0)], w3));
  figures.agents = loadMemory;
}
if (!only || only === 'backup') figures.backup = await backupBench();
if (!only || only === 'snapshot') figures.snapshots = await snapshotBench();
if (!only || only === 'hot') figures.hot = await hotBench(MIB);
if (!only || only === 'bypass') figures.bypass = await bypassBench();
if (!only || only === 'qemu') {
  figures.qemu = await qemuBench({
    ...(values['qemu-mem-mib'] ? { memMib: Number(values['qemu-mem-mib']) } : {}),
    ...(values['qemu-rate'] ? { rate: Number(values['qemu-rate']) } : {}),
  });
}
if (values.json) console.log(JSON.stringify(figures));
