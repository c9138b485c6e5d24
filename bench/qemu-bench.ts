/**
 * QEMU figures for `npm run bench` (`--only qemu`): for one real test guest in one run, QEMU's own direct migration
 * over a unix socket next to a tunnelled live clone through two doppel agents (QEMU's stream in LZ4 frames over the
 * gRPC data plane), alternately, a fresh destination each time. Prints per-run rows, medians and the two ratios
 * against their targets (time at most 1.2x direct; at least 1.5x fewer bytes on the wire); checks the first clone's
 * memory in the guest. Fails on nothing but a broken setup; says when a check failed.
 *
 * Also the direct-migration rig that bench/qemu-relay-probe.ts builds on: QemuRig (the guest's QEMUs, their serial
 * consoles, cleanup) and migrateOnce (one migration to a fresh `-incoming` destination, with an optional route
 * between the two sockets: the probe's relay or its throttled proxy).
 *
 * Every QEMU started here is killed at the end, the fleet's too, even on failure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { detectAccel, type AccelDecision } from '../agent/src/drivers/qemu/accel.js';
import { feedIncoming, listenForMigration, type RelayStats } from '../agent/src/drivers/qemu/migration-relay.js';
import { buildQemuArgs, type QemuMachineSpec } from '../agent/src/drivers/qemu/command-line.js';
import { QemuProcess } from '../agent/src/drivers/qemu/qemu-process.js';
import { QmpError, type JsonObject, type QmpClient } from '../agent/src/drivers/qemu/qmp.js';
import { readQemuVmRecord } from '../agent/src/drivers/qemu/vm-record.js';
import { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { Job } from '../cli/src/client.js';
import { ensureTestGuest, SerialConsole } from '../cli/src/guest/test-guest.js';

/** Bytes per second: no cap in practice (what the tunnelled clone sets when it has no bandwidth limit). */
export const MAX_BANDWIDTH = 10_000_000_000;
export const DOWNTIME_LIMIT_MS = 300;
export const TIME_TARGET = 1.2;
export const BYTES_TARGET = 1.5;
export const MEMCHECK = /MEMCHECK (ok|fail).*/;
const MB = 1e6;

export interface GuestSettings {
  /** The VM's memory. */
  memMib: number;
  /** The test area the guest dirties and checks. */
  areaMib: number;
  /** Pages per second the guest dirties. */
  rate: number;
}

export function guestAppend(g: GuestSettings): string {
  return `console=ttyS0 doppel.mem_mib=${g.areaMib} doppel.rate=${g.rate} quiet`;
}

export interface RigVm {
  q: QemuProcess;
  serial: SerialConsole;
}

/** The test guest's QEMUs started by hand (same command line for source and destinations), in one temp dir. */
export class QemuRig {
  private readonly spawned: QemuProcess[] = [];
  private readonly consoles: SerialConsole[] = [];
  private seq = 0;

  private constructor(
    readonly guest: GuestSettings,
    readonly accel: AccelDecision,
    readonly dir: string,
    private readonly spec: Omit<QemuMachineSpec, 'name' | 'qmpSocket' | 'serialSocket'>,
  ) {}

  static async create(guest: GuestSettings): Promise<QemuRig> {
    const tg = await ensureTestGuest();
    const accel = await detectAccel();
    const spec = {
      memoryMib: guest.memMib,
      vcpus: 1,
      cpuModel: 'qemu64',
      kernel: tg.kernel,
      initrd: tg.initrd,
      append: guestAppend(guest),
      disks: [],
      nics: [],
      accel: accel.accel,
    };
    return new QemuRig(guest, accel, mkdtempSync(join(tmpdir(), 'doppel-qemu-bench-')), spec);
  }

  /** A QEMU of the guest, its serial console connected; `incoming`: paused, waiting for `migrate-incoming`. */
  async startVm(name: string, incoming: boolean): Promise<RigVm> {
    const spec: QemuMachineSpec = {
      ...this.spec,
      name,
      qmpSocket: join(this.dir, `${name}.qmp`),
      serialSocket: join(this.dir, `${name}.serial`),
      ...(incoming ? { paused: true, incoming: 'defer' as const } : {}),
    };
    const q = await QemuProcess.start({ args: buildQemuArgs(spec), qmpSocketPath: spec.qmpSocket });
    this.spawned.push(q);
    const serial = await SerialConsole.connect(spec.serialSocket);
    this.consoles.push(serial);
    return { q, serial };
  }

  /** A name for the next destination. */
  nextName(prefix: string): string {
    return `${prefix}${++this.seq}`;
  }

  /** SIGKILL now, for a signal handler. */
  killAll(): void {
    for (const c of this.consoles) c.close();
    for (const q of this.spawned) q.kill('SIGKILL');
  }

  async close(): Promise<void> {
    this.killAll();
    await Promise.all(this.spawned.map((q) => q.exited));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export async function setCaps(qmp: QmpClient, caps: Record<string, boolean>): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });
}

/** `cont` on a source after its migration (QEMU says "not finalized" for a moment after it completed). */
export async function contSource(qmp: QmpClient): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await qmp.execute('cont');
      return;
    } catch (e) {
      if (!(e instanceof QmpError && /not finalized/.test(e.desc)) || i > 1000) throw e;
      await sleep(5);
    }
  }
}

export function num(o: unknown, ...path: string[]): number {
  let v: unknown = o;
  for (const k of path) v = typeof v === 'object' && v !== null ? (v as JsonObject)[k] : undefined;
  return typeof v === 'number' ? v : 0;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

/** query-migrate every 20 ms until the migration ends, one line each. */
export async function traceMigration(qmp: QmpClient, label: string): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    const m = await qmp.queryMigrate();
    const r = m.ram;
    console.log(
      `  [${label}] +${String(Date.now() - t0).padStart(5)} ms ${m.status.padEnd(14)} sent ${((r?.transferred ?? 0) / MB).toFixed(1).padStart(6)} MB ` +
        `remaining ${((r?.remaining ?? 0) / MB).toFixed(1).padStart(6)} MB syncs ${r?.dirtySyncCount ?? 0} mbps ${Math.round(r?.mbps ?? 0)} ` +
        `dirty-rate ${r?.dirtyPagesRate ?? 0} expected-downtime ${num(m.raw, 'expected-downtime')}`,
    );
    if (['completed', 'failed', 'cancelled', 'pre-switchover'].includes(m.status)) return;
    await sleep(20);
  }
}

export interface MigrationSettings {
  label: string;
  /** downtime-limit (default 300 ms). */
  downtimeMs?: number;
  xbzrle?: boolean;
  zeroPageDetection?: 'legacy' | 'none';
  multifd?: boolean;
  /** multifd's own compression (QEMU compresses in its channel threads). */
  multifdCompression?: 'none' | 'zlib' | 'zstd';
  pause?: boolean;
  /** query-migrate every 20 ms, printed. */
  trace?: boolean;
}

/** What carries the stream from the source's `migrate` URI to the destination's incoming socket. */
export interface MigrationRoute<T> {
  /** The URI the source migrates to. */
  uri: string;
  /** Resolves once the route has delivered the whole stream. */
  done: Promise<T>;
}

/** Builds a route from the socket `out` (free for the route to listen on) to the destination's `incoming`. */
export type RouteFactory<T> = (incoming: string, out: string) => Promise<MigrationRoute<T>>;

export interface MigrationResult {
  label: string;
  /** query-migrate total-time on the source (ms). */
  totalMs: number;
  /** Wall clock from the `migrate` command to the destination's MIGRATION completed event (ms). */
  wallMs: number;
  /** From the source's MIGRATION setup event to the destination's MIGRATION completed event (ms). */
  e2eMs: number;
  /** query-migrate downtime on the source (ms). */
  downtimeMs: number;
  /** From the source's STOP event to the destination's MIGRATION completed event (ms). */
  e2eDowntimeMs: number;
  /** dirty-sync-count. */
  rounds: number;
  /** ram.transferred: what QEMU wrote. */
  qemuBytes: number;
  xbzrleBytes: number;
  /** xbzrle-cache as QEMU reports it, when xbzrle was on. */
  xbzrle?: JsonObject;
  /** The destination's guest after `cont`: `ok` or `fail`. */
  memcheck: string;
}

/**
 * One migration of `src` to a fresh destination QEMU (same command line, `-incoming defer`): straight into the
 * destination's unix socket, or through `route`. Then the destination runs and checks its memory, and the source
 * runs on; the destination is killed.
 */
export async function migrateOnce<T = undefined>(rig: QemuRig, src: QemuProcess, s: MigrationSettings, route?: RouteFactory<T>): Promise<MigrationResult & { routed: T | undefined }> {
  const name = rig.nextName('dst');
  const dst = await rig.startVm(name, true);
  try {
    const common = { events: true, xbzrle: s.xbzrle === true, multifd: s.multifd === true };
    await setCaps(dst.q.qmp, common);
    await setCaps(src.qmp, { ...common, 'pause-before-switchover': s.pause === true });
    const params: JsonObject = {
      'max-bandwidth': MAX_BANDWIDTH,
      'downtime-limit': s.downtimeMs ?? DOWNTIME_LIMIT_MS,
      'zero-page-detection': s.zeroPageDetection ?? 'legacy',
      'multifd-channels': 2,
      'multifd-compression': s.multifdCompression ?? 'none',
    };
    // A cache as large as the guest: the most xbzrle can do (QEMU's default is 64 MiB).
    if (s.xbzrle) params['xbzrle-cache-size'] = rig.guest.memMib * 1024 * 1024;
    await src.qmp.execute('migrate-set-parameters', params);
    await dst.q.qmp.execute('migrate-set-parameters', { 'multifd-channels': 2, 'multifd-compression': s.multifdCompression ?? 'none' });
    const incoming = join(rig.dir, `${name}.in.sock`);
    await dst.q.qmp.execute('migrate-incoming', { uri: `unix:${incoming}` });

    const srcSeq = src.qmp.lastEventSeq;
    const dstSeq = dst.q.qmp.lastEventSeq;
    const routed = route ? await route(incoming, join(rig.dir, `${name}.out.sock`)) : null;
    const t0 = Date.now();
    await src.qmp.execute('migrate', { uri: routed ? routed.uri : `unix:${incoming}` });
    const tracing = s.trace ? traceMigration(src.qmp, s.label) : null;
    if (s.pause) {
      await src.qmp.waitForEvent('MIGRATION', { afterSeq: srcSeq, predicate: (e) => e.data.status === 'pre-switchover' || e.data.status === 'failed', timeoutMs: 120_000 });
      await src.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    }
    const end = await src.qmp.waitForEvent('MIGRATION', {
      afterSeq: srcSeq,
      predicate: (e) => ['completed', 'failed', 'cancelled'].includes(String(e.data.status)),
      timeoutMs: 180_000,
    });
    const info = await src.qmp.queryMigrate();
    if (tracing) await tracing;
    if (end.data.status !== 'completed') throw new Error(`${s.label}: migration ${String(end.data.status)}: ${info.errorDesc ?? ''}`);
    const dstDone = await dst.q.qmp.waitForEvent('MIGRATION', { afterSeq: dstSeq, predicate: (e) => e.data.status === 'completed' || e.data.status === 'failed', timeoutMs: 60_000 });
    if (dstDone.data.status !== 'completed') throw new Error(`${s.label}: the destination's migration ${String(dstDone.data.status)}`);
    const routedResult = routed ? await routed.done : undefined;
    const setupEv = await src.qmp.waitForEvent('MIGRATION', { afterSeq: srcSeq, predicate: (e) => e.data.status === 'setup', timeoutMs: 1 });
    const stopEv = await src.qmp.waitForEvent('STOP', { afterSeq: srcSeq, timeoutMs: 1 });

    // Both sides run on, and the destination's memory checks out.
    for (let i = 0; (await dst.q.qmp.queryStatus()).status === 'inmigrate'; i++) {
      if (i > 1000) throw new Error('the destination never left inmigrate');
      await sleep(5);
    }
    await dst.q.qmp.execute('cont');
    const check = await dst.serial.command('check', MEMCHECK, 60_000);
    await contSource(src.qmp);

    return {
      label: s.label,
      totalMs: info.totalTimeMs ?? 0,
      wallMs: dstDone.timestampUs / 1000 - t0,
      e2eMs: (dstDone.timestampUs - setupEv.timestampUs) / 1000,
      downtimeMs: info.downtimeMs ?? 0,
      e2eDowntimeMs: (dstDone.timestampUs - stopEv.timestampUs) / 1000,
      rounds: info.ram?.dirtySyncCount ?? 0,
      qemuBytes: info.ram?.transferred ?? 0,
      xbzrleBytes: num(info.raw, 'xbzrle-cache', 'bytes'),
      ...(s.xbzrle && typeof info.raw['xbzrle-cache'] === 'object' ? { xbzrle: info.raw['xbzrle-cache'] as JsonObject } : {}),
      memcheck: check[1] ?? '?',
      routed: routedResult,
    };
  } finally {
    dst.serial.close();
    dst.q.kill('SIGKILL');
    await dst.q.exited;
  }
}

/** An emulated network link: take(n) resolves once n more bytes would have crossed it. */
class Link {
  private freeAt = 0;
  constructor(readonly bytesPerSec: number) {}
  /** Reserves n bytes of the link; returns the ms until they are across. */
  reserve(n: number): number {
    const now = performance.now();
    this.freeAt = Math.max(this.freeAt, now) + (n * 1000) / this.bytesPerSec;
    return this.freeAt - now;
  }
  async take(n: number): Promise<void> {
    const ms = this.reserve(n);
    if (ms >= 1) await sleep(ms);
  }
}

/** Direct migration over a link: a plain byte proxy from `listenPath` to `targetPath`, paced by `link`. */
async function throttledProxy(listenPath: string, targetPath: string, link: Link): Promise<{ done: Promise<void>; close: () => void }> {
  const dst = connect({ path: targetPath });
  await new Promise<void>((resolve, reject) => dst.once('connect', resolve).once('error', reject));
  dst.on('error', () => undefined);
  let conn: Socket | null = null;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const server = createServer((s) => {
    server.close();
    conn = s;
    s.on('error', () => undefined);
    s.on('data', (chunk: Buffer) => {
      const ok = dst.write(chunk);
      const ms = link.reserve(chunk.length);
      if (ms < 1 && ok) return;
      s.pause();
      void Promise.all([sleep(ms), ok ? null : new Promise((r) => dst.once('drain', r))]).then(() => s.resume());
    });
    s.on('end', () => dst.end(() => resolveDone()));
  });
  await new Promise<void>((r) => server.listen(listenPath, r));
  return {
    done,
    close: () => {
      server.close();
      conn?.destroy();
      dst.destroy();
    },
  };
}


/**
 * The route of a migration over an emulated link between two hosts, or of a relayed one on loopback: `relayed`,
 * the relay halves the agents run (LZ4 frames; `listenForMigration` → `feedIncoming`) in this process, its frames
 * paced to the link; else QEMU's own stream through a plain byte proxy paced to it. Neither: no route (QEMU
 * straight into the destination's socket).
 */
export function linkRoute(opts: { relayed: boolean; linkBytesPerSec?: number }): RouteFactory<RelayStats | undefined> | undefined {
  const link = opts.linkBytesPerSec ? new Link(opts.linkBytesPerSec) : null;
  if (opts.relayed) {
    return async (incoming, out) => {
      const feed = await feedIncoming(incoming);
      const source = await listenForMigration(out, async (frame) => {
        if (link) await link.take(frame.length);
        await feed.write(frame);
      });
      const done = source.done.then(async (st) => {
        await feed.end();
        return st;
      });
      done.catch(() => feed.destroy());
      return { uri: `unix:${out}`, done };
    };
  }
  if (!link) return undefined;
  return async (incoming, out) => {
    const proxy = await throttledProxy(out, incoming, link);
    return {
      uri: `unix:${out}`,
      done: proxy.done.then(() => {
        proxy.close();
        return undefined;
      }),
    };
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The bench part.

export interface QemuBenchOptions {
  /** VM memory (default 512). */
  memMib?: number;
  /** Pages per second the guest dirties (default 20000). */
  rate?: number;
  /** Runs of each (default 3). */
  runs?: number;
  /** Emulated links between two hosts, Mbit/s, one direct and one relayed migration over each (default 1000). */
  linksMbps?: number[];
}

/** One emulated link: QEMU's stream through a byte proxy paced to it against the agents' relay halves paced to it. */
export interface LinkFigures {
  mbps: number;
  direct: { e2eMs: number; wireBytes: number; downtimeMs: number; rounds: number; memcheck: string };
  relayed: { e2eMs: number; wireBytes: number; downtimeMs: number; rounds: number; memcheck: string };
  /** relayed / direct time (target <= 1.2). */
  timeRatio: number;
  /** direct / relayed wire bytes (target >= 1.5). */
  bytesRatio: number;
}

export interface QemuRun {
  kind: 'direct' | 'tunnelled';
  run: number;
  /** Direct: QEMU's total-time. Tunnelled: the job's stats.totalMs (capabilities to source running). */
  totalMs: number;
  /** Direct: `migrate` to the destination's completed. Tunnelled: job created to job finished (target VM, memory, disk). */
  wallMs: number;
  /** ram.transferred. */
  qemuBytes: number;
  /** Direct: ram.transferred. Tunnelled: LZ4 frames on the gRPC wire. */
  wireBytes: number;
  downtimeMs: number;
  rounds: number;
  /** The guest's own memory check on the destination ('' when not checked). */
  memcheck: string;
}

export interface QemuFigures {
  memMib: number;
  areaMib: number;
  rate: number;
  accel: string;
  runs: QemuRun[];
  medians: { direct: Omit<QemuRun, 'kind' | 'run' | 'memcheck'>; tunnelled: Omit<QemuRun, 'kind' | 'run' | 'memcheck'> };
  /** Median tunnelled totalMs / median direct total-time (target <= 1.2). */
  timeRatio: number;
  /** Median tunnelled totalMs / median direct wall clock. */
  timeRatioWall: number;
  /** Median direct wire bytes / median tunnelled wire bytes (target >= 1.5). */
  bytesRatio: number;
  /** The first tunnelled clone's memory check line. */
  cloneMemcheck: string;
  targetsMet: { time: boolean; bytes: boolean };
  links: LinkFigures[];
}

function cells(cols: (string | number)[], widths: number[]): string {
  return cols.map((c, i) => (i === 0 ? String(c).padEnd(widths[i] ?? 10) : String(c).padStart(widths[i] ?? 10))).join('  ');
}

export async function qemuBench(opts: QemuBenchOptions = {}): Promise<QemuFigures> {
  const memMib = opts.memMib ?? 512;
  const guest: GuestSettings = { memMib, areaMib: Math.min(256, Math.floor(memMib / 2)), rate: opts.rate ?? 20_000 };
  const runs = opts.runs ?? 3;
  const rig = await QemuRig.create(guest);
  console.log(
    `\nQEMU live migration of the test guest (${guest.memMib} MiB, ${guest.areaMib} MiB dirtied at ${guest.rate} pages/s, accel ${rig.accel.accel}): ` +
      `QEMU direct over a unix socket vs a tunnelled clone through two agents (LZ4 frames over gRPC), ${runs} runs each, alternately`,
  );
  console.log(`max-bandwidth ${MAX_BANDWIDTH / 1e9} GB/s, downtime limit ${DOWNTIME_LIMIT_MS} ms; agents in their own processes; everything on this host's cores`);
  let fleet: LocalFleet | undefined;
  const consoles: SerialConsole[] = [];
  // Once, from the finally below or from Ctrl-C: every QEMU killed (the agents' too: they outlive their agents), the fleet stopped.
  let cleaning: Promise<void> | undefined;
  const cleanup = (): Promise<void> =>
    (cleaning ??= (async () => {
      for (const s of consoles) s.close();
      await rig.close();
      if (fleet) {
        const f = fleet;
        for (const v of await f.client.vms().catch(() => [])) await f.client.destroyVm(v.id).catch(() => undefined);
        await f.stop();
      }
    })());
  const onSigint = (): void => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSigint);
  try {
    const src = await rig.startVm('src', false);
    await src.serial.waitFor(/DOPPEL-GUEST READY/, 120_000);

    const tg = await ensureTestGuest();
    fleet = await LocalFleet.start({
      mode: 'process',
      agents: ['host-a', 'host-b'],
      agentMemoryMib: memMib * 4,
      qemu: { kernel: tg.kernel, initrd: tg.initrd, append: guestAppend(guest), accel: 'auto' },
    });
    const c = fleet.client;
    const root = await fleet.dataRoot;
    const serialOf = async (host: string, vmId: string): Promise<SerialConsole> => {
      const rec = readQemuVmRecord(join(root, host, 'vms', vmId));
      if (!rec) throw new Error(`no qemu record for vm ${vmId} on ${host}`);
      const s = await SerialConsole.connect(rec.serialSocket, { connectTimeoutMs: 30_000 });
      consoles.push(s);
      return s;
    };
    const vm = await c.createVm({ name: 'qemu-bench', host: 'host-a', memoryMib: memMib, vcpus: 1, disks: [{ name: 'disk0', sizeMib: 64, image: '' }] });
    const vmSerial = await serialOf('host-a', vm.id);
    await c.runVm(vm.id);
    await vmSerial.waitFor(/DOPPEL-GUEST READY/, 120_000);

    // While one side migrates, the other side's source is quiet: the direct source stopped, the fleet guest's
    // dirtier at 1 page/s (its QEMU belongs to the agent).
    const turnTo = async (side: 'direct' | 'tunnelled'): Promise<void> => {
      if (side === 'tunnelled') {
        await src.q.qmp.execute('stop');
        await vmSerial.command(`rate ${guest.rate}`, /^RATE \d+/, 30_000);
      } else {
        await vmSerial.command('rate 1', /^RATE \d+/, 30_000);
        if ((await src.q.qmp.queryStatus()).status !== 'running') await src.q.qmp.execute('cont');
      }
      await sleep(1000);
    };

    const w = [14, 9, 9, 9, 9, 10, 7, 9];
    console.log(cells(['run', 'total ms', 'wall ms', 'QEMU MB', 'wire MB', 'downtime', 'rounds', 'memcheck'], w));
    const fmt = (r: Omit<QemuRun, 'kind' | 'run' | 'memcheck'>, label: string, memcheck: string): string =>
      cells([label, r.totalMs.toFixed(0), r.wallMs.toFixed(0), (r.qemuBytes / MB).toFixed(1), (r.wireBytes / MB).toFixed(1), r.downtimeMs.toFixed(0), r.rounds, memcheck || '-'], w);
    const rows: QemuRun[] = [];
    let cloneMemcheck = '';
    for (let i = 1; i <= runs; i++) {
      await turnTo('direct');
      const d = await migrateOnce(rig, src.q, { label: `direct #${i}` });
      const dr: QemuRun = { kind: 'direct', run: i, totalMs: d.totalMs, wallMs: d.wallMs, qemuBytes: d.qemuBytes, wireBytes: d.qemuBytes, downtimeMs: d.downtimeMs, rounds: d.rounds, memcheck: d.memcheck };
      rows.push(dr);
      console.log(fmt(dr, `direct #${i}`, dr.memcheck));

      await turnTo('tunnelled');
      const job: Job = await c.waitJob((await c.clone({ vm: vm.id, targetHost: 'host-b', onNonConvergence: 'warn', maxDowntimeMs: DOWNTIME_LIMIT_MS })).id, undefined, 180_000);
      if (job.state !== 'completed' || !job.stats) throw new Error(`tunnelled clone #${i} failed: ${job.errorName}: ${job.error}`);
      const cloneId = job.plan?.targetVm ?? '';
      let memcheck = '';
      if (i === 1) {
        const cs = await serialOf('host-b', cloneId);
        await c.runVm(cloneId);
        const m = await cs.command('check', MEMCHECK, 60_000);
        cloneMemcheck = m[0];
        memcheck = m[1] ?? '?';
        cs.close();
      }
      const s = job.stats;
      const tr: QemuRun = {
        kind: 'tunnelled',
        run: i,
        totalMs: s.totalMs,
        wallMs: Date.parse(job.updatedAt) - Date.parse(job.createdAt),
        qemuBytes: s.bytesRaw,
        wireBytes: s.bytesWire,
        downtimeMs: s.downtimeMs,
        rounds: s.rounds,
        memcheck,
      };
      rows.push(tr);
      console.log(fmt(tr, `tunnelled #${i}`, memcheck));
      if (cloneId) await c.destroyVm(cloneId);
    }
    const med = (kind: QemuRun['kind']): Omit<QemuRun, 'kind' | 'run' | 'memcheck'> => {
      const rs = rows.filter((r) => r.kind === kind);
      const m = (f: (r: QemuRun) => number): number => median(rs.map(f));
      return { totalMs: m((r) => r.totalMs), wallMs: m((r) => r.wallMs), qemuBytes: m((r) => r.qemuBytes), wireBytes: m((r) => r.wireBytes), downtimeMs: m((r) => r.downtimeMs), rounds: m((r) => r.rounds) };
    };
    const direct = med('direct');
    const tunnelled = med('tunnelled');
    console.log(fmt(direct, 'median direct', ''));
    console.log(fmt(tunnelled, 'median tunnel', ''));
    const timeRatio = tunnelled.totalMs / direct.totalMs;
    const timeRatioWall = tunnelled.totalMs / direct.wallMs;
    const bytesRatio = direct.wireBytes / tunnelled.wireBytes;
    const met = { time: timeRatio <= TIME_TARGET, bytes: bytesRatio >= BYTES_TARGET };
    console.log(
      `time:  tunnelled / direct ${timeRatio.toFixed(2)}x (against direct wall clock ${timeRatioWall.toFixed(2)}x); target <= ${TIME_TARGET}x: ${met.time ? 'met' : 'NOT met'}`,
    );
    console.log(`bytes: direct wire / tunnelled wire ${bytesRatio.toFixed(2)}x; target >= ${BYTES_TARGET}x: ${met.bytes ? 'met' : 'NOT met'}`);
    const memOk = cloneMemcheck.startsWith('MEMCHECK ok') && rows.every((r) => r.memcheck === '' || r.memcheck === 'ok');
    console.log(`memory: first tunnelled clone: ${cloneMemcheck}; direct destinations: ${rows.filter((r) => r.kind === 'direct').map((r) => r.memcheck).join(', ')}${memOk ? '' : '  <- CHECK FAILED'}`);
    console.log(
      'total ms: direct = QEMU total-time; tunnelled = the job\'s memory migration (stats.totalMs: capabilities to source running).\n' +
        'wall ms: direct = `migrate` to the destination landed; tunnelled = the whole job (target VM, memory, 64 MiB disk copy).\n' +
        'On loopback QEMU\'s direct migration is a memory copy, limited only by CPU: compression, gRPC and two more\n' +
        'processes on the same two cores only cost time here. The relay pays off where a network link between two hosts\n' +
        'is the limit: fewer bytes on the wire is then less time (the emulated link below).',
    );
    const links: LinkFigures[] = [];
    const linksMbps = opts.linksMbps ?? [1000];
    if (linksMbps.length > 0) {
      await turnTo('direct');
      console.log(
        '\nOver an emulated link between two hosts (one run each): direct = QEMU\'s stream through a byte proxy paced to the link;\n' +
          'relayed = the agents\' relay halves (the same LZ4 frames as above) in one process, frames paced to the link.',
      );
      console.log(cells(['link', 'e2e ms', 'wire MB', 'downtime', 'rounds', 'memcheck'], w));
      for (const mbps of linksMbps) {
        const linkBytesPerSec = (mbps * 1e6) / 8;
        const d = await migrateOnce(rig, src.q, { label: `direct @${mbps}` }, linkRoute({ relayed: false, linkBytesPerSec }));
        await sleep(1000);
        const r = await migrateOnce(rig, src.q, { label: `relayed @${mbps}` }, linkRoute({ relayed: true, linkBytesPerSec }));
        await sleep(1000);
        const fig = (m: typeof d, wire: number) => ({ e2eMs: m.e2eMs, wireBytes: wire, downtimeMs: m.downtimeMs, rounds: m.rounds, memcheck: m.memcheck });
        const lf: LinkFigures = {
          mbps,
          direct: fig(d, d.qemuBytes),
          relayed: fig(r, r.routed?.wireBytes ?? r.qemuBytes),
          timeRatio: r.e2eMs / d.e2eMs,
          bytesRatio: d.qemuBytes / (r.routed?.wireBytes ?? r.qemuBytes),
        };
        links.push(lf);
        for (const [label, x] of [[`direct @${mbps} Mb/s`, lf.direct], [`relayed @${mbps} Mb/s`, lf.relayed]] as const) {
          console.log(cells([label, x.e2eMs.toFixed(0), (x.wireBytes / MB).toFixed(1), x.downtimeMs.toFixed(0), x.rounds, x.memcheck], w));
        }
        console.log(
          `@${mbps} Mb/s: time relayed / direct ${lf.timeRatio.toFixed(2)}x (target <= ${TIME_TARGET}x: ${lf.timeRatio <= TIME_TARGET ? 'met' : 'NOT met'}); ` +
            `wire direct / relayed ${lf.bytesRatio.toFixed(2)}x (target >= ${BYTES_TARGET}x: ${lf.bytesRatio >= BYTES_TARGET ? 'met' : 'NOT met'})`,
        );
      }
    }
    return { memMib: guest.memMib, areaMib: guest.areaMib, rate: guest.rate, accel: rig.accel.accel, runs: rows, medians: { direct, tunnelled }, timeRatio, timeRatioWall, bytesRatio, cloneMemcheck, targetsMet: met, links };
  } finally {
    process.removeListener('SIGINT', onSigint);
    await cleanup();
  }
}
