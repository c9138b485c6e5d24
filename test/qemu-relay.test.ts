/**
 * The relayed QEMU migration: LZ4 framing of the migration stream, the relay halves against fake peers, and a real
 * relayed live clone of the test guest on TCG (pause-before-switchover, migrate-continue, both sides checking their
 * memory), plus a destination killed mid-stream.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { AbortedError, AlreadyExistsError, DataCorruptionError, InvalidArgumentError } from '../shared/src/errors.js';
import {
  FRAME_HEADER_BYTES,
  MAX_FRAME_RAW_BYTES,
  MigrationFrameDecoder,
  MigrationFrameEncoder,
  decodeFrame,
  encodeFrame,
} from '../agent/src/drivers/qemu/migration-frames.js';
import { MigrationRelayError, feedIncoming, listenForMigration, relayMigration, type InProcessRelay } from '../agent/src/drivers/qemu/migration-relay.js';
import { QemuProcess } from '../agent/src/drivers/qemu/qemu-process.js';
import { QmpError, type MigrationInfo, type QmpClient } from '../agent/src/drivers/qemu/qmp.js';
import { buildQemuArgs, type QemuMachineSpec } from '../agent/src/drivers/qemu/command-line.js';
import { detectAccel } from '../agent/src/drivers/qemu/accel.js';
import { ensureTestGuest, SerialConsole, type TestGuest } from './helpers/guest.js';

const root = mkdtempSync(join(tmpdir(), 'doppel-relay-'));
after(() => rmSync(root, { recursive: true, force: true }));

/** Memory as the test guest has it: per 4 KiB page, 2 KiB of pseudo-random data then 2 KiB of zeros. */
function guestLikeMemory(bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let p = 0; p < bytes; p += 4096) randomBytes(Math.min(2048, bytes - p)).copy(b, p);
  return b;
}

// ---- framing ----

test('frames round trip: compressible, incompressible, empty; counters; sequence', () => {
  const enc = new MigrationFrameEncoder();
  const dec = new MigrationFrameDecoder();
  const half = guestLikeMemory(MAX_FRAME_RAW_BYTES);
  const random = randomBytes(300_000);
  const zeros = Buffer.alloc(MAX_FRAME_RAW_BYTES + 5);

  const f1 = enc.encode(half);
  assert.equal(f1.length, 1);
  const d1 = decodeFrame(f1[0]!);
  assert.equal(d1.compressed, true);
  assert.ok(d1.wireBytes < 0.52 * MAX_FRAME_RAW_BYTES, `half-random memory compresses to about half (${d1.wireBytes})`);
  assert.ok(dec.decode(f1[0]!).equals(half));

  const f2 = enc.encode(random);
  assert.equal(f2.length, 1);
  assert.equal(f2[0]!.length, FRAME_HEADER_BYTES + random.length, 'incompressible data goes raw, header only added');
  assert.equal(decodeFrame(f2[0]!).compressed, false);
  assert.ok(dec.decode(f2[0]!).equals(random));

  // Over 1 MiB: two frames.
  const f3 = enc.encode(zeros);
  assert.deepEqual(f3.map((f) => decodeFrame(f).raw.length), [MAX_FRAME_RAW_BYTES, 5]);
  assert.ok(Buffer.concat(f3.map((f) => dec.decode(f))).equals(zeros));

  assert.deepEqual(enc.encode(Buffer.alloc(0)), [], 'no frame for no bytes');
  const empty = encodeFrame(7, Buffer.alloc(0));
  assert.equal(empty.length, FRAME_HEADER_BYTES);
  assert.deepEqual({ ...decodeFrame(empty), raw: decodeFrame(empty).raw.length }, { seq: 7, raw: 0, compressed: false, wireBytes: FRAME_HEADER_BYTES });

  assert.deepEqual(enc.counters, dec.counters);
  assert.equal(enc.counters.frames, 4);
  assert.equal(enc.counters.rawFrames, 2, 'the random frame and the 5-byte tail (too short to shrink) went raw');
  assert.equal(enc.counters.rawBytes, half.length + random.length + zeros.length);
  assert.equal(enc.counters.wireBytes, [...f1, ...f2, ...f3].reduce((n, f) => n + f.length, 0));
  assert.equal(enc.seq, 4);
  assert.equal(dec.seq, 4);
});

test('frames: a corrupted byte anywhere, a truncated or oversize frame, a lost frame are refused', () => {
  const frame = encodeFrame(3, guestLikeMemory(64 * 1024));
  assert.doesNotThrow(() => decodeFrame(frame));
  // Any single flipped byte: header (magic, version, flags, seq, lengths, crc) or payload.
  for (const at of [0, 4, 5, 6, 8, 12, 16, 20, FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + 100, frame.length - 1]) {
    const bad = Buffer.from(frame);
    bad[at] = bad[at]! ^ 0x10;
    assert.throws(() => decodeFrame(bad), DataCorruptionError, `byte ${at}`);
  }
  const rawFrame = encodeFrame(0, randomBytes(1000));
  const flipped = Buffer.from(rawFrame);
  flipped[FRAME_HEADER_BYTES + 10] = flipped[FRAME_HEADER_BYTES + 10]! ^ 1;
  assert.throws(() => decodeFrame(flipped), /checksum mismatch/);
  assert.throws(() => decodeFrame(frame.subarray(0, 10)), /shorter than its 24-byte header/);
  assert.throws(() => decodeFrame(frame.subarray(0, frame.length - 1)), DataCorruptionError);
  assert.throws(() => decodeFrame(Buffer.alloc(MAX_FRAME_RAW_BYTES + FRAME_HEADER_BYTES + 1)), /exceeds the/);
  // A header claiming more than 1 MiB of raw data is refused even with a matching checksum.
  const liar = encodeFrame(0, Buffer.alloc(0));
  liar.writeUInt32LE(MAX_FRAME_RAW_BYTES + 1, 12);
  assert.throws(() => decodeFrame(liar), DataCorruptionError);
  assert.throws(() => encodeFrame(0, Buffer.alloc(MAX_FRAME_RAW_BYTES + 1)), InvalidArgumentError);
  assert.throws(() => encodeFrame(-1, Buffer.alloc(1)), InvalidArgumentError);

  const dec = new MigrationFrameDecoder();
  dec.decode(encodeFrame(0, Buffer.from('a')));
  assert.throws(() => dec.decode(encodeFrame(2, Buffer.from('c'))), /frame 2 arrived where frame 1 was expected/);
});

// ---- the relay halves against fake peers ----

/** A fake destination QEMU: an incoming socket that collects (optionally slowly) what it is sent. */
async function fakeDestination(path: string, opts: { slow?: boolean } = {}): Promise<{ received: () => Buffer; ended: Promise<void>; close: () => void; conn: Promise<Socket> }> {
  const chunks: Buffer[] = [];
  let resolveEnded!: () => void;
  const ended = new Promise<void>((r) => (resolveEnded = r));
  let resolveConn!: (s: Socket) => void;
  const conn = new Promise<Socket>((r) => (resolveConn = r));
  const server = createServer((s) => {
    resolveConn(s);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      if (opts.slow) {
        s.pause();
        setTimeout(() => s.resume(), 2);
      }
    });
    s.on('end', () => resolveEnded());
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return { received: () => Buffer.concat(chunks), ended, close: () => server.close(), conn };
}

/** A fake source QEMU: connects to the relay and writes `data` in pieces, then ends. */
async function fakeSource(path: string, data: Buffer): Promise<Socket> {
  const s = connect({ path });
  await new Promise<void>((r, j) => s.once('connect', r).once('error', j));
  s.on('error', () => undefined);
  for (let off = 0; off < data.length; off += 200_000) {
    if (!s.write(data.subarray(off, off + 200_000))) await new Promise((r) => s.once('drain', r));
  }
  s.end();
  return s;
}

test('relay halves: bytes pass exactly, in frames, with backpressure bounded; one connection only', async () => {
  const dir = mkdtempSync(join(root, 'fake-'));
  const dst = await fakeDestination(join(dir, 'in.sock'), { slow: true });
  const data = Buffer.concat([guestLikeMemory(6 * MAX_FRAME_RAW_BYTES), randomBytes(3 * MAX_FRAME_RAW_BYTES + 17), Buffer.alloc(5 * MAX_FRAME_RAW_BYTES)]);
  const relay = await relayMigration(join(dir, 'out.sock'), join(dir, 'in.sock'), { maxInFlightBytes: 2 * MAX_FRAME_RAW_BYTES });
  await assert.rejects(listenForMigration(join(dir, 'out.sock'), () => Promise.resolve()), AlreadyExistsError);
  const src = await fakeSource(join(dir, 'out.sock'), data);
  // A second source is refused: the relay stopped listening once the first connected.
  await assert.rejects(fakeSource(join(dir, 'out.sock'), Buffer.from('x')));
  const { source, feed } = await relay.done;
  await dst.ended;
  assert.ok(dst.received().equals(data), 'the destination got the stream byte for byte');
  assert.equal(source.rawBytes, data.length);
  assert.deepEqual({ ...feed }, { frames: source.frames, rawFrames: source.rawFrames, rawBytes: source.rawBytes, wireBytes: source.wireBytes });
  assert.ok(source.wireBytes < 0.6 * data.length, `wire ${source.wireBytes} of raw ${data.length}`);
  assert.ok(source.rawFrames >= 3, 'the random part went raw');
  assert.ok(source.pauses > 0, 'a slow destination paused the reading');
  // The bound is soft by what one event-loop turn reads (libuv: up to 32 reads of 64 KiB).
  assert.ok(source.peakInFlightBytes <= 2 * MAX_FRAME_RAW_BYTES + 2 * 1024 * 1024 + 64 * 1024, `peak in flight ${source.peakInFlightBytes}`);
  src.destroy();
  dst.close();
});

test('relay halves: a destination that goes away fails the relay and drops the source connection', async () => {
  const dir = mkdtempSync(join(root, 'fake-'));
  const dst = await fakeDestination(join(dir, 'in.sock'));
  const relay = await relayMigration(join(dir, 'out.sock'), join(dir, 'in.sock'));
  const s = connect({ path: join(dir, 'out.sock') });
  await new Promise<void>((r) => s.once('connect', r));
  const sourceClosed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => undefined);
  s.write(guestLikeMemory(3 * MAX_FRAME_RAW_BYTES));
  (await dst.conn).destroy();
  dst.close();
  // Keep writing until the relay notices.
  const writer = (async () => {
    while (!s.destroyed) {
      s.write(guestLikeMemory(MAX_FRAME_RAW_BYTES));
      await sleep(5);
    }
  })();
  await assert.rejects(relay.done, (e: Error) => e instanceof MigrationRelayError && e.side === 'destination' && /closed its incoming socket|failed after/.test(e.message));
  await sourceClosed;
  await writer;

  // A sink that throws fails the source half; close() aborts a relay nobody connected to.
  const l = await listenForMigration(join(dir, 'out2.sock'), () => Promise.reject(new Error('boom')));
  const s2 = await fakeSource(join(dir, 'out2.sock'), Buffer.alloc(1000));
  await assert.rejects(l.done, (e: Error) => e instanceof MigrationRelayError && e.side === 'sink' && /boom/.test(e.message));
  s2.destroy();
  const idle = await listenForMigration(join(dir, 'out3.sock'), () => Promise.resolve());
  idle.close();
  await assert.rejects(idle.done, AbortedError);
  const late = await listenForMigration(join(dir, 'out4.sock'), () => Promise.resolve(), { acceptTimeoutMs: 50 });
  await assert.rejects(late.done, /no QEMU connected/);
  await assert.rejects(feedIncoming(join(dir, 'nothing.sock'), { connectTimeoutMs: 100 }), /nothing listened there/);
});

test('relay halves: a destination closing cleanly fails the relay only if the source does not end soon after', async () => {
  const dir = mkdtempSync(join(root, 'fake-'));
  const run = async (name: string, sourceEnds: boolean): Promise<InProcessRelay> => {
    const dst = await fakeDestination(join(dir, `${name}.in`));
    const relay = await relayMigration(join(dir, `${name}.out`), join(dir, `${name}.in`), { peerCloseGraceMs: 300 });
    const s = connect({ path: join(dir, `${name}.out`) });
    s.on('error', () => undefined);
    await new Promise<void>((r) => s.once('connect', r));
    s.write(Buffer.alloc(1000, 7));
    while (dst.received().length < 1000) await sleep(5);
    // A destination that loaded a complete stream closes first; the source's end follows (or, if it died, not).
    (await dst.conn).end();
    await sleep(100);
    if (sourceEnds) s.end();
    dst.close();
    return relay;
  };
  const ok = await run('race', true);
  assert.equal((await ok.done).source.rawBytes, 1000);
  assert.equal(ok.feed.closedByPeer, true);
  // The end came within the grace: no early end is signalled.
  assert.equal(await Promise.race([ok.feed.endedEarly.then(() => 'ended early'), sleep(400).then(() => 'pending')]), 'pending');
  const dead = await run('silent', false);
  const early = await dead.feed.endedEarly;
  assert.ok(early instanceof MigrationRelayError && early.side === 'destination' && /did not end its stream within 300 ms/.test(early.message), early.message);
  await assert.rejects(dead.done, (e: Error) => e instanceof MigrationRelayError && e.side === 'destination' && /did not end its stream within 300 ms/.test(e.message));
});

// ---- real QEMU (TCG) and the test guest ----

const MEM_MIB = 256;
const AREA_MIB = 128;
const RATE = 20_000;
const CMD_MS = 60_000;
const MEMCHECK = /MEMCHECK (ok|fail).*/;

interface Vm {
  q: QemuProcess;
  serial: SerialConsole;
}

const vms: Vm[] = [];
after(async () => {
  for (const vm of vms) {
    vm.serial.close();
    vm.q.kill('SIGKILL');
  }
  await Promise.all(vms.map((vm) => vm.q.exited));
});

let guestSpec: Promise<Omit<QemuMachineSpec, 'name' | 'qmpSocket' | 'serialSocket'>> | undefined;
function spec(): Promise<Omit<QemuMachineSpec, 'name' | 'qmpSocket' | 'serialSocket'>> {
  guestSpec ??= (async () => {
    const [guest, accel]: [TestGuest, Awaited<ReturnType<typeof detectAccel>>] = await Promise.all([ensureTestGuest(), detectAccel()]);
    return {
      memoryMib: MEM_MIB,
      vcpus: 1,
      cpuModel: 'qemu64',
      kernel: guest.kernel,
      initrd: guest.initrd,
      // The source and the destination need the same command line, -append included.
      append: `console=ttyS0 doppel.mem_mib=${AREA_MIB} doppel.rate=${RATE} quiet`,
      disks: [],
      nics: [],
      accel: accel.accel,
    };
  })();
  return guestSpec;
}

const qemuDir = mkdtempSync(join(tmpdir(), 'doppel-relay-qemu-'));
after(() => rmSync(qemuDir, { recursive: true, force: true }));

async function startVm(name: string, incoming: boolean): Promise<Vm> {
  const s: QemuMachineSpec = {
    ...(await spec()),
    name,
    qmpSocket: join(qemuDir, `${name}.qmp`),
    serialSocket: join(qemuDir, `${name}.serial`),
    ...(incoming ? { paused: true, incoming: 'defer' as const } : {}),
  };
  const q = await QemuProcess.start({ args: buildQemuArgs(s), qmpSocketPath: s.qmpSocket });
  const vm = { q, serial: await SerialConsole.connect(s.serialSocket) };
  vms.push(vm);
  return vm;
}

/** One source guest for all the QEMU tests: booted once, it runs on after each (completed or failed) migration. */
let sourceVm: Promise<Vm> | undefined;
function source(): Promise<Vm> {
  sourceVm ??= (async () => {
    const vm = await startVm('src', false);
    await vm.serial.waitFor(new RegExp(`DOPPEL-GUEST READY mem_mib=${AREA_MIB} rate=${RATE}`), 120_000);
    await setCaps(vm.q.qmp, { events: true, 'pause-before-switchover': true });
    return vm;
  })();
  return sourceVm;
}

async function setCaps(qmp: QmpClient, caps: Record<string, boolean>): Promise<void> {
  await qmp.execute('migrate-set-capabilities', { capabilities: Object.entries(caps).map(([capability, state]) => ({ capability, state })) });
}

async function checkMemory(vm: Vm, who: string): Promise<void> {
  const m = await vm.serial.command('check', MEMCHECK, CMD_MS);
  assert.match(m[0], /^MEMCHECK ok pages=32768 /, `${who}: ${m[0]}`);
}

async function stats(vm: Vm): Promise<{ walks: number; pages: number }> {
  const m = await vm.serial.command('stats', /STATS walks=(\d+) pages_written=(\d+)/, CMD_MS);
  return { walks: Number(m[1]), pages: Number(m[2]) };
}

/** The guest's walker keeps going: pages written go up, and within ~2 walks, the walk count. */
async function assertWorkloadRuns(vm: Vm, who: string): Promise<void> {
  const a = await stats(vm);
  await sleep((2 * AREA_MIB * 256 * 1000) / RATE);
  const b = await stats(vm);
  assert.ok(b.pages > a.pages && b.walks > a.walks, `${who}: the workload runs on (${JSON.stringify(a)} → ${JSON.stringify(b)})`);
}

/** A destination QEMU, paused, waiting for a migration on a unix socket. */
async function destination(name: string): Promise<{ vm: Vm; incoming: string }> {
  const vm = await startVm(name, true);
  assert.equal((await vm.q.qmp.queryStatus()).status, 'inmigrate');
  await setCaps(vm.q.qmp, { events: true });
  const incoming = join(qemuDir, `${name}.in`);
  await vm.q.qmp.execute('migrate-incoming', { uri: `unix:${incoming}` });
  return { vm, incoming };
}

async function waitMigration(qmp: QmpClient, afterSeq: number, statuses: string[], timeoutMs = 120_000): Promise<string> {
  const e = await qmp.waitForEvent('MIGRATION', { afterSeq, predicate: (ev) => statuses.includes(String(ev.data.status)), timeoutMs });
  return String(e.data.status);
}

/** `cont` on a source after its migration: QEMU says "Migration is not finalized yet" for a moment. */
async function contSource(qmp: QmpClient): Promise<number> {
  for (let i = 0; ; i++) {
    try {
      await qmp.execute('cont');
      return i;
    } catch (e) {
      if (!(e instanceof QmpError && e.desc === 'Migration is not finalized yet') || i >= 1000) throw e;
      await sleep(10);
    }
  }
}

async function quiet(vm: Vm): Promise<void> {
  vm.serial.close();
  vm.q.kill('SIGKILL');
  await vm.q.exited;
}

test('a relayed live clone of a real guest: pre-switchover, migrate-continue, both sides run with intact memory', { timeout: 300_000 }, async (t) => {
  const src = await source();
  await checkMemory(src, 'source before');
  const dst = await destination('dst-ok');
  await src.q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 10_000_000_000, 'downtime-limit': 300 });

  let relay: InProcessRelay | undefined;
  try {
    relay = await relayMigration(join(qemuDir, 'ok.relay'), dst.incoming, { acceptTimeoutMs: 30_000 });
    const seq = src.q.qmp.lastEventSeq;
    const dstSeq = dst.vm.q.qmp.lastEventSeq;
    await src.q.qmp.execute('migrate', { uri: `unix:${relay.source.socketPath}` });
    assert.equal(await waitMigration(src.q.qmp, seq, ['pre-switchover', 'failed']), 'pre-switchover');
    // The window: the source's vCPUs are stopped and everything up to here went through the relay. The driver
    // snapshots the disks here.
    const atPause = await src.q.qmp.queryMigrate();
    assert.deepEqual(await src.q.qmp.queryStatus(), { status: 'finish-migrate', running: false });
    assert.ok(relay.source.stats.rawBytes > 0 && relay.source.stats.rawBytes <= (atPause.ram?.transferred ?? 0));
    await src.q.qmp.execute('migrate-continue', { state: 'pre-switchover' });
    assert.equal(await waitMigration(src.q.qmp, seq, ['completed', 'failed']), 'completed');
    const { source: rs, feed } = await relay.done;
    assert.equal(await waitMigration(dst.vm.q.qmp, dstSeq, ['completed', 'failed'], 30_000), 'completed');

    const info: MigrationInfo = await src.q.qmp.queryMigrate();
    t.diagnostic(
      `relayed: total ${info.totalTimeMs} ms, downtime ${info.downtimeMs} ms (pause window included), rounds ${info.ram?.dirtySyncCount}, ` +
        `QEMU sent ${info.ram?.transferred} B; relay read ${rs.rawBytes} B, wire ${rs.wireBytes} B (${(rs.rawBytes / rs.wireBytes).toFixed(2)}x) in ${rs.frames} frames ` +
        `(${rs.rawFrames} raw), ${rs.pauses} pauses, peak in flight ${rs.peakInFlightBytes} B`,
    );
    assert.equal(rs.rawBytes, info.ram?.transferred, 'the relay carried exactly what QEMU sent');
    assert.deepEqual({ ...feed }, { frames: rs.frames, rawFrames: rs.rawFrames, rawBytes: rs.rawBytes, wireBytes: rs.wireBytes });
    assert.ok(rs.wireBytes * 1.5 < rs.rawBytes, 'LZ4 shrinks the test guest stream by more than 1.5x');

    // The source runs on (cont is refused until the migration is finalized), then the clone.
    const retries = await contSource(src.q.qmp);
    t.diagnostic(`cont on the source succeeded after ${retries} "not finalized" answers`);
    assert.equal((await src.q.qmp.queryStatus()).status, 'running');
    for (let i = 0; (await dst.vm.q.qmp.queryStatus()).status === 'inmigrate'; i++) {
      assert.ok(i < 500, 'the destination never left inmigrate');
      await sleep(10);
    }
    assert.deepEqual(await dst.vm.q.qmp.queryStatus(), { status: 'paused', running: false });
    await dst.vm.q.qmp.execute('cont');
    await checkMemory(dst.vm, 'clone');
    await checkMemory(src, 'source after');
    await assertWorkloadRuns(src, 'source');
    await assertWorkloadRuns(dst.vm, 'clone');
    await checkMemory(dst.vm, 'clone, later');
  } finally {
    relay?.close();
    await quiet(dst.vm);
  }
});

test('the destination killed mid-stream: the relay names it, the migration fails, the source runs on', { timeout: 300_000 }, async (t) => {
  const src = await source();
  const dst = await destination('dst-killed');
  // Slow enough that the kill lands in the middle of the first pass.
  await src.q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 32 * 1024 * 1024, 'downtime-limit': 300 });
  const relay = await relayMigration(join(qemuDir, 'killed.relay'), dst.incoming, { acceptTimeoutMs: 30_000 });
  try {
    const seq = src.q.qmp.lastEventSeq;
    await src.q.qmp.execute('migrate', { uri: `unix:${relay.source.socketPath}` });
    for (let i = 0; relay.source.stats.rawBytes < 16 * 1024 * 1024; i++) {
      assert.ok(i < 3000, 'the stream never got going');
      await sleep(10);
    }
    dst.vm.q.kill('SIGKILL');
    await assert.rejects(relay.done, (e: Error) => {
      t.diagnostic(`relay: ${e.name}: ${e.message}`);
      return e instanceof MigrationRelayError && e.side === 'destination' && e.message.includes(dst.incoming);
    });
    assert.equal(await waitMigration(src.q.qmp, seq, ['failed', 'completed']), 'failed');
    const info = await src.q.qmp.queryMigrate();
    t.diagnostic(`source: migration ${info.status}: ${info.errorDesc ?? ''}; run state ${JSON.stringify(await src.q.qmp.queryStatus())}`);
    assert.ok(info.errorDesc, 'QEMU says why');
    // A failure before the switchover never stopped the guest: no cont needed (the next test covers the window).
    assert.deepEqual(await src.q.qmp.queryStatus(), { status: 'running', running: true });
    await checkMemory(src, 'source after a failed migration');
    await assertWorkloadRuns(src, 'source after a failed migration');
  } finally {
    relay.close();
    await quiet(dst.vm);
  }
});

test('the destination killed in the pre-switchover window: the relay reports it, migrate_cancel resumes the source', { timeout: 300_000 }, async (t) => {
  const src = await source();
  const dst = await destination('dst-window');
  await src.q.qmp.execute('migrate-set-parameters', { 'max-bandwidth': 10_000_000_000, 'downtime-limit': 300 });
  const relay = await relayMigration(join(qemuDir, 'window.relay'), dst.incoming, { acceptTimeoutMs: 30_000 });
  try {
    const seq = src.q.qmp.lastEventSeq;
    await src.q.qmp.execute('migrate', { uri: `unix:${relay.source.socketPath}` });
    assert.equal(await waitMigration(src.q.qmp, seq, ['pre-switchover', 'failed']), 'pre-switchover');
    dst.vm.q.kill('SIGKILL');
    // Nothing moves in the window, yet the relay notices: the destination's socket resets.
    await assert.rejects(relay.done, (e: Error) => {
      t.diagnostic(`relay: ${e.name}: ${e.message}`);
      return e instanceof MigrationRelayError && e.side === 'destination';
    });
    // QEMU does not: it waits for migrate-continue with the guest stopped.
    await sleep(200);
    assert.equal((await src.q.qmp.queryMigrate()).status, 'pre-switchover');
    assert.deepEqual(await src.q.qmp.queryStatus(), { status: 'finish-migrate', running: false });
    const resumeSeq = src.q.qmp.lastEventSeq;
    await src.q.qmp.execute('migrate_cancel');
    assert.equal(await waitMigration(src.q.qmp, seq, ['cancelled', 'failed', 'completed']), 'cancelled');
    // QEMU restarts the guest it stopped for the switchover by itself.
    await src.q.qmp.waitForEvent('RESUME', { afterSeq: resumeSeq, timeoutMs: 10_000 });
    const info = await src.q.qmp.queryMigrate();
    t.diagnostic(`source: migration ${info.status}: ${info.errorDesc ?? ''}`);
    assert.deepEqual(await src.q.qmp.queryStatus(), { status: 'running', running: true });
    await checkMemory(src, 'source after a cancelled migration');
    await assertWorkloadRuns(src, 'source after a cancelled migration');
  } finally {
    relay.close();
    await quiet(dst.vm);
  }
});
