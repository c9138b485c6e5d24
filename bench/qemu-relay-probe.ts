/**
 * Probe: QEMU's own direct migration over a unix socket against the same migration carried by the in-process
 * relay (LZ4 frames, agent/src/drivers/qemu/migration-relay.ts), for one test guest in one run, alternately.
 * Prints a table of total time, bytes QEMU sent, bytes on the relay's wire, downtime and rounds, and the two
 * ratios against the targets (time at most 1.2x direct; at least 1.5x fewer bytes on the wire). Then,
 * once each, variants: xbzrle, zero-page detection off, multifd (direct only), pause-before-switchover. Then, once
 * each, both over an emulated network link of a given bandwidth (--links, Mbit/s): direct through a plain byte proxy
 * throttled to the link, relayed with its frame sink throttled to the link. On loopback nothing limits QEMU's own
 * migration but CPU, so the link rows show the regime the relay is for: two hosts and a network between them.
 *
 *   node --import tsx bench/qemu-relay-probe.ts [--mem-mib 512] [--area-mib 256] [--rate 20000] [--runs 3]
 *       [--downtime-ms 300] [--links 1000,2500] [--no-variants] [--trace] [--json]
 *
 * Boots the real test guest under TCG (scripts/build-test-guest.sh); every QEMU it starts is killed at the end.
 */
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { QemuProcess } from '../agent/src/drivers/qemu/qemu-process.js';
import type { JsonObject } from '../agent/src/drivers/qemu/qmp.js';
import { BYTES_TARGET, contSource, linkRoute, MAX_BANDWIDTH, MEMCHECK, median, migrateOnce as migrate, QemuRig, TIME_TARGET, type MigrationSettings } from './qemu-bench.js';

const { values } = parseArgs({
  options: {
    'mem-mib': { type: 'string' },
    'area-mib': { type: 'string' },
    rate: { type: 'string' },
    runs: { type: 'string' },
    'downtime-ms': { type: 'string' },
    links: { type: 'string' },
    'no-variants': { type: 'boolean' },
    trace: { type: 'boolean' },
    json: { type: 'boolean' },
  },
});
const MEM_MIB = Number(values['mem-mib'] ?? 512);
const AREA_MIB = Number(values['area-mib'] ?? 256);
const RATE = Number(values.rate ?? 20_000);
const RUNS = Number(values.runs ?? 3);
const DOWNTIME_MS = Number(values['downtime-ms'] ?? 300);
const LINKS_MBPS = (values.links ?? '1000,2500').split(',').filter(Boolean).map(Number);

interface Settings extends MigrationSettings {
  relayed: boolean;
  /** Emulated link between the hosts, bytes per second (none: loopback, QEMU straight into the socket). */
  linkBytesPerSec?: number;
}

interface Row {
  label: string;
  relayed: boolean;
  /** query-migrate total-time on the source (ms). */
  totalMs: number;
  /** From the source's MIGRATION setup event to the destination's MIGRATION completed event (ms). */
  e2eMs: number;
  /** query-migrate downtime on the source (ms). */
  downtimeMs: number;
  /** From the source's STOP event to the destination's MIGRATION completed event (ms). */
  e2eDowntimeMs: number;
  rounds: number;
  /** ram.transferred: what QEMU wrote. */
  qemuBytes: number;
  /** Relay: migration-stream bytes read, frame bytes on the wire. Direct: both are ram.transferred. */
  streamBytes: number;
  wireBytes: number;
  rawFrames: number;
  frames: number;
  xbzrleBytes: number;
  /** xbzrle-cache as QEMU reports it, when xbzrle was on. */
  xbzrle?: JsonObject;
  memcheck: string;
}

let rig: QemuRig | undefined;
process.on('SIGINT', () => {
  rig?.killAll();
  process.exit(130);
});

/** One migration of the source to a fresh destination: direct, relayed, or through a throttled proxy. */
async function migrateOnce(src: QemuProcess, s: Settings): Promise<Row> {
  const route = s.relayed || s.linkBytesPerSec ? linkRoute({ relayed: s.relayed, ...(s.linkBytesPerSec ? { linkBytesPerSec: s.linkBytesPerSec } : {}) }) : undefined;
  const r = await migrate(rig!, src, { ...s, downtimeMs: DOWNTIME_MS, trace: values.trace === true }, route);
  const rs = r.routed;
  return {
    label: s.label,
    relayed: s.relayed,
    totalMs: r.totalMs,
    e2eMs: r.e2eMs,
    downtimeMs: r.downtimeMs,
    e2eDowntimeMs: r.e2eDowntimeMs,
    rounds: r.rounds,
    qemuBytes: r.qemuBytes,
    streamBytes: rs ? rs.rawBytes : r.qemuBytes,
    wireBytes: rs ? rs.wireBytes : r.qemuBytes,
    rawFrames: rs?.rawFrames ?? 0,
    frames: rs?.frames ?? 0,
    xbzrleBytes: r.xbzrleBytes,
    ...(r.xbzrle ? { xbzrle: r.xbzrle } : {}),
    memcheck: r.memcheck,
  };
}

const MB = 1e6;
function fmtRow(r: Row): string {
  return fmtCols(r) + (r.xbzrle ? `  xbzrle ${JSON.stringify(r.xbzrle)}` : '');
}
function fmtCols(r: Row): string {
  const cols = [
    r.label.padEnd(22),
    String(Math.round(r.totalMs)).padStart(6),
    String(Math.round(r.e2eMs)).padStart(6),
    String(r.downtimeMs).padStart(5),
    String(Math.round(r.e2eDowntimeMs)).padStart(6),
    String(r.rounds).padStart(3),
    (r.qemuBytes / MB).toFixed(1).padStart(7),
    (r.streamBytes / MB).toFixed(1).padStart(7),
    (r.wireBytes / MB).toFixed(1).padStart(7),
    r.relayed ? `${r.rawFrames}/${r.frames}`.padStart(8) : '-'.padStart(8),
    r.xbzrleBytes ? (r.xbzrleBytes / MB).toFixed(1).padStart(6) : '-'.padStart(6),
    r.memcheck,
  ];
  return cols.join('  ');
}
const HEADER =
  'run                     total    e2e  down  e2eDn  rnd   qemuMB  strmMB  wireMB  rawfr/fr  xbzMB  memcheck\n' +
  '                         (ms)   (ms)  (ms)   (ms)';

async function main(): Promise<void> {
  rig = await QemuRig.create({ memMib: MEM_MIB, areaMib: AREA_MIB, rate: RATE });
  const accel = rig.accel;
  console.log(`guest ${MEM_MIB} MiB, test area ${AREA_MIB} MiB dirtied at ${RATE} pages/s; accel ${accel.accel} (${accel.reason})`);
  console.log(`max-bandwidth ${MAX_BANDWIDTH / 1e9} GB/s, downtime-limit ${DOWNTIME_MS} ms, QEMU and relay in this host's 2 cores`);
  const t0 = Date.now();
  const src = await rig.startVm('src', false);
  await src.serial.waitFor(/DOPPEL-GUEST READY/, 120_000);
  console.log(`source booted to READY in ${Date.now() - t0} ms`);
  const caps = await src.q.qmp.execute<{ capability: string }[]>('query-migrate-capabilities');
  console.log(`migration capabilities of this QEMU: ${caps.map((c) => c.capability).join(' ')}`);
  await sleep(1000);

  const rows: Row[] = [];
  const print = (r: Row): void => {
    rows.push(r);
    console.log(fmtRow(r));
  };
  console.log(HEADER);
  for (let i = 0; i < RUNS; i++) {
    print(await migrateOnce(src.q, { label: `direct #${i + 1}`, relayed: false }));
    await sleep(1000);
    print(await migrateOnce(src.q, { label: `relayed lz4 #${i + 1}`, relayed: true }));
    await sleep(1000);
  }
  const direct = rows.filter((r) => !r.relayed);
  const relayed = rows.filter((r) => r.relayed);
  const ratio = (f: (r: Row) => number): number => median(relayed.map(f)) / median(direct.map(f));
  const timeRatio = ratio((r) => r.totalMs);
  const e2eRatio = ratio((r) => r.e2eMs);
  const bytesRatio = median(direct.map((r) => r.wireBytes)) / median(relayed.map((r) => r.wireBytes));
  const lz4Ratio = median(relayed.map((r) => r.streamBytes / r.wireBytes));
  console.log(`\nmedians over ${RUNS} runs each:`);
  console.log(`  time:  relayed/direct total-time ${timeRatio.toFixed(2)}x, end to end ${e2eRatio.toFixed(2)}x (target <= ${TIME_TARGET}x): ${e2eRatio <= TIME_TARGET && timeRatio <= TIME_TARGET ? 'met' : 'NOT met'}`);
  console.log(`  bytes: direct wire / relayed wire ${bytesRatio.toFixed(2)}x (target >= ${BYTES_TARGET}x): ${bytesRatio >= BYTES_TARGET ? 'met' : 'NOT met'}; LZ4 alone shrinks the relayed stream ${lz4Ratio.toFixed(2)}x`);

  if (!values['no-variants']) {
    console.log('\nvariants (one run each):');
    console.log(HEADER);
    const variants: Settings[] = [
      { label: 'direct xbzrle', relayed: false, xbzrle: true },
      { label: 'relayed xbzrle', relayed: true, xbzrle: true },
      { label: 'direct zero-detect off', relayed: false, zeroPageDetection: 'none' },
      { label: 'relayed zero-detect off', relayed: true, zeroPageDetection: 'none' },
      { label: 'direct multifd x2', relayed: false, multifd: true },
      { label: 'direct multifd zstd', relayed: false, multifd: true, multifdCompression: 'zstd' },
      { label: 'direct multifd zlib', relayed: false, multifd: true, multifdCompression: 'zlib' },
      { label: 'direct pause', relayed: false, pause: true },
      { label: 'relayed pause', relayed: true, pause: true },
    ];
    for (const v of variants) {
      try {
        print(await migrateOnce(src.q, v));
      } catch (e) {
        console.log(`${v.label.padEnd(22)}  failed: ${e instanceof Error ? e.message : String(e)}`);
        await contSource(src.q.qmp).catch(() => undefined);
      }
      await sleep(1000);
    }
  }
  if (LINKS_MBPS.length > 0) {
    console.log('\nover an emulated link (one run each; direct = a plain proxy paced to the link, relayed = frames paced to it):');
    console.log(HEADER);
    for (const mbps of LINKS_MBPS) {
      const linkBytesPerSec = (mbps * 1e6) / 8;
      const d = await migrateOnce(src.q, { label: `direct @${mbps} Mb/s`, relayed: false, linkBytesPerSec });
      print(d);
      await sleep(1000);
      const r = await migrateOnce(src.q, { label: `relayed @${mbps} Mb/s`, relayed: true, linkBytesPerSec });
      print(r);
      await sleep(1000);
      if (mbps === LINKS_MBPS[0] && !values['no-variants']) {
        for (const v of [
          { label: `direct xbzrle @${mbps}`, relayed: false, xbzrle: true, linkBytesPerSec },
          { label: `relayed xbzrle @${mbps}`, relayed: true, xbzrle: true, linkBytesPerSec },
        ]) {
          print(await migrateOnce(src.q, v));
          await sleep(1000);
        }
      }
      console.log(
        `  @${mbps} Mb/s: time relayed/direct ${(r.e2eMs / d.e2eMs).toFixed(2)}x (target <= ${TIME_TARGET}x), ` +
          `wire direct/relayed ${(d.wireBytes / r.wireBytes).toFixed(2)}x (target >= ${BYTES_TARGET}x)`,
      );
    }
  }
  const final = await src.serial.command('check', MEMCHECK, 60_000);
  console.log(`\nsource after all runs: ${final[0]}`);
  if (values.json) console.log(JSON.stringify({ memMib: MEM_MIB, areaMib: AREA_MIB, rate: RATE, rows, timeRatio, e2eRatio, bytesRatio }));
}

try {
  await main();
} finally {
  await rig?.close();
}
