// The qemu driver's block layer against real QEMU 10 (TCG) and qemu-img/qemu-nbd: qcow2 wrappers, the NBD client
// and DiskViews over frozen images, external snapshots over QMP, and persistent dirty bitmaps with the checkpoint
// scheme. The guest test boots the real test guest and lets it write its disk around snapshots taken in paused
// windows. The last test prints NBD read throughput on a 256 MiB disk.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server, type Socket } from 'node:net';
import { promisify } from 'node:util';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../shared/src/errors.js';
import { DISK_BLOCK_SIZE } from '../shared/src/protocol/types.js';
import type { DiskView } from '../agent/src/drivers/driver.js';
import { hashDiskView } from '../agent/src/drivers/disk-hash.js';
import { QemuProcess } from '../agent/src/drivers/qemu/qemu-process.js';
import { buildQemuArgs, type QemuMachineSpec } from '../agent/src/drivers/qemu/command-line.js';
import {
  allocationBitmap,
  checkImage,
  convertImage,
  createQcow2,
  ImageInUseError,
  imageInfo,
  imageMap,
} from '../agent/src/drivers/qemu/qcow2.js';
import {
  NbdClient,
  NbdClosedError,
  NbdProtocolError,
  NbdRequestError,
  exportNode,
  openQcow2View,
  openQemuExportView,
  openRawCopyView,
  type NbdDiskView,
} from '../agent/src/drivers/qemu/qcow2-view.js';
import { activeNode, commitOverlay, createExternalSnapshot, prepareExternalSnapshot, queryChain } from '../agent/src/drivers/qemu/block-snapshot.js';
import {
  carryBitmapsOnCommit,
  cbtBitmapName,
  endCheckpoint,
  listDirtyBitmaps,
  prepareSnapshotWithCheckpoint,
  readCheckpointChanges,
  readDirtyBitmap,
  snapshotDisksWithCheckpoint,
  snapshotWithCheckpoint,
  startChangeTracking,
  trackingState,
} from '../agent/src/drivers/qemu/dirty-bitmap.js';
import { ensureTestGuest, SerialConsole } from './helpers/guest.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
const root = mkdtempSync(join(tmpdir(), 'doppel-qblk-'));
const qemus: QemuProcess[] = [];
const closers: (() => Promise<void>)[] = [];

after(async () => {
  for (const c of closers.splice(0)) await c().catch(() => undefined);
  for (const q of qemus) {
    q.kill('SIGKILL');
    await q.exited;
  }
  rmSync(root, { recursive: true, force: true });
});

let dirN = 0;
function freshDir(name: string): string {
  const d = join(root, `${dirN++}-${name}`);
  mkdirSync(d);
  return d;
}

/** A QEMU with no guest (`-M none`): the block layer alone. Disks are given as -blockdev nodes disk0, disk1... */
async function blockQemu(disks: string[]): Promise<QemuProcess> {
  const args = ['-M', 'none', '-nodefaults', '-display', 'none'];
  disks.forEach((path, i) => {
    args.push('-blockdev', JSON.stringify({ 'node-name': `disk${i}-file`, driver: 'file', filename: path }));
    args.push('-blockdev', JSON.stringify({ 'node-name': `disk${i}`, driver: 'qcow2', file: `disk${i}-file` }));
  });
  const q = await QemuProcess.start({ args });
  qemus.push(q);
  return q;
}

/** Writes through QEMU's block layer without a guest (HMP qemu-io; there is no device to conflict with). */
async function qemuIo(q: QemuProcess, node: string, cmd: string): Promise<void> {
  const out = await q.qmp.execute<string>('human-monitor-command', { 'command-line': `qemu-io ${node} "${cmd}"` });
  assert.equal(out.trim(), '', `qemu-io ${node} ${cmd}: ${out}`);
}

async function qemuIoFile(path: string, ...cmds: string[]): Promise<void> {
  await execFileP('qemu-io', [...cmds.flatMap((c) => ['-c', c]), path]);
}

function blocksOf(bits: Uint32Array): number[] {
  const out: number[] = [];
  for (let b = 0; b < bits.length * 32; b++) if ((bits[b >>> 5]! >>> (b & 31)) & 1) out.push(b);
  return out;
}

function allocatedOf(view: DiskView): number[] {
  const out: number[] = [];
  for (let b = 0; b < view.blockCount; b++) if (view.isAllocated(b)) out.push(b);
  return out;
}

/** Blocks whose bytes differ between two views of the same size (null: against an all-zero disk). */
async function diffViews(a: DiskView | null, b: DiskView): Promise<number[]> {
  const batch = 64;
  const bufA = Buffer.alloc(batch * DISK_BLOCK_SIZE);
  const bufB = Buffer.alloc(batch * DISK_BLOCK_SIZE);
  const out: number[] = [];
  for (let first = 0; first < b.blockCount; first += batch) {
    const n = Math.min(batch, b.blockCount - first);
    if (a) await a.read(first, n, bufA);
    await b.read(first, n, bufB);
    for (let i = 0; i < n; i++) {
      const s = i * DISK_BLOCK_SIZE;
      if (bufA.compare(bufB, s, s + DISK_BLOCK_SIZE, s, s + DISK_BLOCK_SIZE) !== 0) out.push(first + i);
    }
  }
  return out;
}

async function sha256File(path: string): Promise<string> {
  const { stdout } = await execFileP('sha256sum', [path]);
  return stdout.split(' ')[0]!;
}

async function view(path: string): Promise<NbdDiskView & { close(): Promise<void> }> {
  const v = await openQcow2View(path);
  closers.push(() => v.close());
  return v;
}

// ---- qemu-img wrappers ----

test('qemu-img wrappers: create over a backing file, info with the chain, map, allocation, clear errors', async () => {
  const d = freshDir('img');
  const base = join(d, 'base.qcow2');
  const top = join(d, 'top.qcow2');
  await createQcow2(base, { sizeBytes: 64 * MiB });
  await qemuIoFile(base, 'write -P 0xab 0 64k', 'write -z 1M 64k', 'write -P 1 3M 4k');
  await createQcow2(top, { backing: { path: base, headerName: 'base.qcow2' } });
  await qemuIoFile(top, 'write -P 2 5M 64k');

  const chain = await imageInfo(top, { backingChain: true });
  assert.equal(chain.length, 2);
  assert.equal(chain[0]!.virtualSize, 64 * MiB);
  assert.equal(chain[0]!.backingFilename, 'base.qcow2');
  assert.equal(chain[0]!.fullBackingFilename, base);
  assert.equal(chain[0]!.backingFormat, 'qcow2');
  assert.equal(chain[0]!.clusterSize, DISK_BLOCK_SIZE);
  assert.equal(chain[1]!.filename, base);
  assert.deepEqual(await checkImage(top), { corruptions: 0, leaks: 0, checkErrors: 0 });

  const extents = await imageMap(top);
  // The whole chain: data at 0, 3M (a 4 KiB write allocates its block) and 5M; the zero cluster at 1M is not allocated.
  assert.deepEqual(blocksOf(allocationBitmap(extents, 64 * MiB)), [0, 48, 80]);
  // The top layer alone holds the 5M block.
  assert.deepEqual(blocksOf(allocationBitmap(extents, 64 * MiB, { maxDepth: 0 })), [80]);

  await assert.rejects(createQcow2('relative.qcow2', { sizeBytes: MiB }), InvalidArgumentError);
  await assert.rejects(createQcow2(join(d, 'x.qcow2'), { sizeBytes: 1000 }), InvalidArgumentError);
  await assert.rejects(createQcow2(join(d, 'x.qcow2'), {}), /sizeBytes is needed/);
  await assert.rejects(imageInfo(join(d, 'missing.qcow2')), (e: unknown) => e instanceof NotFoundError && /missing\.qcow2.*No such file/.test(e.message));
  await assert.rejects(createQcow2(join(d, 'x.qcow2'), { backing: { path: join(d, 'nope.qcow2') } }), /nope\.qcow2/);

  // A QEMU holding the image read-write holds its lock: qemu-img and qemu-nbd say so clearly.
  const q = await blockQemu([base]);
  try {
    await assert.rejects(imageMap(base), ImageInUseError);
    await assert.rejects(openQcow2View(base), ImageInUseError);
  } finally {
    await q.quit();
  }
});

// ---- NBD client and views ----

test('DiskViews over NBD: qemu-nbd and QEMU exports read the chain byte for byte, holes as zeros; errors name the export', async () => {
  const d = freshDir('nbd');
  const base = join(d, 'base.qcow2');
  const top = join(d, 'top.qcow2');
  // 64 MiB plus 4 KiB: the last block is partial and reads zero-padded.
  const size = 64 * MiB + 4096;
  await createQcow2(base, { sizeBytes: size });
  await qemuIoFile(base, 'write -P 0xab 0 64k', 'write -z 1M 64k', 'write -P 1 3M 4k', 'write -P 7 10M 5M', `write -P 9 ${64 * MiB} 4k`);
  await createQcow2(top, { backing: { path: base } });
  await qemuIoFile(top, 'write -P 2 5M 64k', 'write -P 3 12M 4k', 'write -z 0 64k');
  const raw = join(d, 'top.raw');
  await convertImage(top, raw);
  const rawBytes = (await execFileP('stat', ['-c', '%s', raw])).stdout.trim();
  assert.equal(Number(rawBytes), size);
  const padded = join(d, 'padded.raw');
  await execFileP('cp', [raw, padded]);
  await execFileP('truncate', ['-s', String(Math.ceil(size / DISK_BLOCK_SIZE) * DISK_BLOCK_SIZE), padded]);
  const want = await sha256File(padded);

  const viaMap = await openQcow2View(top);
  const viaNbd = await openQcow2View(top, { allocation: 'nbd' });
  try {
    assert.equal(viaMap.sizeBytes, size);
    assert.equal(viaMap.blockCount, 1025);
    // Block 0 was zeroed in the top: not allocated any more. 3M, 5M, 10M-15M (12M inside), the tail block.
    const expected = [48, 80, ...Array.from({ length: 80 }, (_, i) => 160 + i), 1024];
    assert.deepEqual(allocatedOf(viaMap), expected);
    assert.deepEqual(allocatedOf(viaNbd), expected);
    assert.equal(await hashDiskView(viaMap), want);
    assert.equal(await hashDiskView(viaNbd), want);
    const buf = Buffer.alloc(2 * DISK_BLOCK_SIZE);
    await assert.rejects(viaMap.read(1024, 2, buf), InvalidArgumentError);
    await assert.rejects(viaMap.read(0, 2, Buffer.alloc(10)), InvalidArgumentError);
    assert.throws(() => viaMap.isAllocated(1025), InvalidArgumentError);
  } finally {
    await viaMap.close();
    await viaNbd.close();
  }

  const raw2 = await openRawCopyView(top, d);
  try {
    assert.equal(await hashDiskView(raw2), want);
  } finally {
    await raw2.close();
  }

  // The same chain exported by a QEMU (nodes from the image headers), and the errors of a bad request.
  const q = await blockQemu([top]);
  const sock = join(d, 'qemu-nbd.sock');
  const ev = await openQemuExportView(q.qmp, { node: 'disk0', socketPath: sock });
  try {
    assert.deepEqual(allocatedOf(ev), [48, 80, ...Array.from({ length: 80 }, (_, i) => 160 + i), 1024]);
    assert.equal(await hashDiskView(ev), want);
    await assert.rejects(NbdClient.connect({ socketPath: sock, exportName: 'no-such-export' }), (e: unknown) => e instanceof NotFoundError && /no-such-export/.test(e.message));
    await assert.rejects(
      NbdClient.connect({ socketPath: sock, exportName: 'no-such-export', metaContexts: ['qemu:dirty-bitmap:nope'] }),
      (e: unknown) => e instanceof NotFoundError && /no-such-export/.test(e.message),
    );
    await assert.rejects(NbdClient.connect({ socketPath: join(d, 'nothing.sock') }), NotFoundError);
  } finally {
    await ev.close();
    await q.quit();
  }
});

/** A fake NBD server: fixed newstyle, structured replies and NBD_OPT_GO for a 1 MiB export, then `onRequest`. */
async function fakeNbd(path: string, onRequest: (sock: Socket, req: Buffer) => void): Promise<Server> {
  const server = createServer((sock) => {
    sock.on('error', () => undefined);
    const hello = Buffer.alloc(18);
    hello.write('NBDMAGIC', 0, 'latin1');
    hello.write('IHAVEOPT', 8, 'latin1');
    hello.writeUInt16BE(3, 16);
    sock.write(hello);
    let buf = Buffer.alloc(0);
    let stage: 'flags' | 'options' | 'transmission' = 'flags';
    const reply = (option: number, type: number, data: Buffer): void => {
      const h = Buffer.alloc(20);
      h.writeBigUInt64BE(0x0003e889045565a9n, 0);
      h.writeUInt32BE(option, 8);
      h.writeUInt32BE(type, 12);
      h.writeUInt32BE(data.length, 16);
      sock.write(Buffer.concat([h, data]));
    };
    sock.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (stage === 'flags') {
          if (buf.length < 4) return;
          buf = buf.subarray(4);
          stage = 'options';
        } else if (stage === 'options') {
          if (buf.length < 16 || buf.length < 16 + buf.readUInt32BE(12)) return;
          const option = buf.readUInt32BE(8);
          buf = buf.subarray(16 + buf.readUInt32BE(12));
          if (option === 7) {
            const info = Buffer.alloc(12);
            info.writeBigUInt64BE(BigInt(MiB), 2);
            reply(7, 3, info);
            reply(7, 1, Buffer.alloc(0));
            stage = 'transmission';
          } else {
            reply(option, 1, Buffer.alloc(0));
          }
        } else {
          if (buf.length < 28) return;
          onRequest(sock, buf.subarray(0, 28));
          buf = buf.subarray(28);
        }
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

test('NBD client: a peer that is not NBD, a bad reply, a server error and a cut connection fail clearly', async () => {
  const d = freshDir('fake-nbd');
  const notNbd = createServer((sock) => sock.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
  await new Promise<void>((resolve) => notNbd.listen(join(d, 'http.sock'), resolve));
  await assert.rejects(NbdClient.connect({ socketPath: join(d, 'http.sock') }), (e: unknown) => e instanceof NbdProtocolError && /http\.sock is not an NBD server/.test(e.message));
  notNbd.close();

  // A structured error chunk fails that request only; the connection stays usable.
  let n = 0;
  const srv = await fakeNbd(join(d, 'a.sock'), (sock, req) => {
    const cookie = req.subarray(8, 16);
    const h = Buffer.alloc(20);
    h.writeUInt32BE(0x668e33ef, 0);
    if (n++ === 0) {
      const msg = Buffer.from('disk on fire');
      const payload = Buffer.alloc(6 + msg.length);
      payload.writeUInt32BE(5, 0);
      payload.writeUInt16BE(msg.length, 4);
      msg.copy(payload, 6);
      h.writeUInt16BE(1, 4);
      h.writeUInt16BE(0x8001, 6);
      cookie.copy(h, 8);
      h.writeUInt32BE(payload.length, 16);
      sock.write(Buffer.concat([h, payload]));
    } else if (n === 2) {
      // A hole chunk covering the read, in two TCP writes split mid-header.
      const p = Buffer.alloc(12);
      p.writeBigUInt64BE(req.readBigUInt64BE(16), 0);
      p.writeUInt32BE(req.readUInt32BE(24), 8);
      h.writeUInt16BE(1, 4);
      h.writeUInt16BE(2, 6);
      cookie.copy(h, 8);
      h.writeUInt32BE(12, 16);
      const all = Buffer.concat([h, p]);
      sock.write(all.subarray(0, 7));
      setTimeout(() => sock.write(all.subarray(7)), 20);
    } else {
      sock.write(Buffer.from('garbage!garbage!garbage!'));
    }
  });
  const c = await NbdClient.connect({ socketPath: join(d, 'a.sock') });
  assert.equal(c.size, MiB);
  const buf = Buffer.alloc(DISK_BLOCK_SIZE, 0xff);
  await assert.rejects(c.read(0, DISK_BLOCK_SIZE, buf), (e: unknown) => e instanceof NbdRequestError && e.errno === 5 && /EIO: disk on fire/.test(e.message));
  await c.read(0, DISK_BLOCK_SIZE, buf);
  assert.ok(buf.every((x) => x === 0), 'the hole reads as zeros');
  await assert.rejects(c.read(0, DISK_BLOCK_SIZE, buf), (e: unknown) => e instanceof NbdProtocolError && /bad magic/.test(e.message));
  assert.equal(c.isOpen, false);
  await assert.rejects(c.read(0, DISK_BLOCK_SIZE, buf), NbdClosedError);
  await assert.rejects(c.read(MiB, DISK_BLOCK_SIZE, buf), InvalidArgumentError);
  srv.close();
});

test('NBD client: WRITE (cut at the payload limit, pipelined, FUA) and FLUSH into a writable QEMU export; read-only refuses', async () => {
  const d = freshDir('nbd-write');
  const disk = join(d, 'w.qcow2');
  const size = 16 * MiB + 4096;
  await createQcow2(disk, { sizeBytes: size });
  const q = await blockQemu([disk]);
  const sock = join(d, 'w.sock');
  const big = randomFillSync(Buffer.alloc(5 * MiB + 4096));
  const small = Buffer.alloc(4096, 0x5a);
  const exp = await exportNode(q.qmp, { node: 'disk0', socketPath: sock, writable: true });
  const c = await NbdClient.connect({ socketPath: sock, exportName: exp.name });
  try {
    assert.equal(c.readOnly, false);
    assert.ok(c.canFlush, 'QEMU offers flush');
    // 5 MiB + 4 KiB: three requests of at most 2 MiB, in flight together with a FUA write of the last block.
    await Promise.all([c.write(MiB, big), c.write(16 * MiB, small, { fua: true })]);
    await c.flush();
    const back = Buffer.alloc(big.length);
    await c.read(MiB, big.length, back);
    assert.ok(back.equals(big), 'the written range reads back');
    await assert.rejects(c.write(size - 4096, Buffer.alloc(8192)), InvalidArgumentError);
    await c.writeZeroes(2 * MiB, MiB);
    await c.flush();
  } finally {
    await c.close();
    await exp.close();
  }
  // A read-only export refuses writes before sending anything; flush is a no-op there.
  const ro = await exportNode(q.qmp, { node: 'disk0', socketPath: sock });
  const r = await NbdClient.connect({ socketPath: sock, exportName: ro.name });
  try {
    assert.equal(r.readOnly, true);
    await assert.rejects(r.write(0, small), FailedPreconditionError);
    await r.flush();
  } finally {
    await r.close();
    await ro.close();
  }
  await q.quit();
  // On disk, through qemu-nbd: the writes landed where they were sent, the zeroed MiB reads as zeros.
  const v = await view(disk);
  const want = Buffer.from(big);
  want.fill(0, MiB, 2 * MiB);
  const blocks = Math.ceil(big.length / DISK_BLOCK_SIZE);
  const got = Buffer.alloc(blocks * DISK_BLOCK_SIZE, 0xff);
  await v.read(MiB / DISK_BLOCK_SIZE, blocks, got);
  assert.ok(got.subarray(0, big.length).equals(want), 'the image holds the writes');
  assert.ok(got.subarray(big.length).every((x) => x === 0), 'nothing past them');
  const tail = Buffer.alloc(DISK_BLOCK_SIZE);
  await v.read(16 * MiB / DISK_BLOCK_SIZE, 1, tail);
  assert.ok(tail.subarray(0, 4096).equals(small) && tail.subarray(4096).every((x) => x === 0));
});

test('two exports opened at once share one NBD server start (no "already running" race)', async () => {
  const d = freshDir('nbd-race');
  const a = join(d, 'a.qcow2');
  const b = join(d, 'b.qcow2');
  await createQcow2(a, { sizeBytes: 4 * MiB });
  await createQcow2(b, { sizeBytes: 8 * MiB });
  const q = await blockQemu([a, b]);
  const sock = join(d, 'nbd.sock');
  const views = await Promise.all([openQemuExportView(q.qmp, { node: 'disk0', socketPath: sock }), openQemuExportView(q.qmp, { node: 'disk1', socketPath: sock })]);
  assert.deepEqual(views.map((v) => v.blockCount), [64, 128]);
  await assert.rejects(exportNode(q.qmp, { node: 'disk0', socketPath: join(d, 'other.sock') }), /already listens on/);
  for (const v of views) await v.close();
  await q.quit();
});

test('commitOverlay folding a command-line top (`-blockdev` diskN over diskN-file) also drops diskN-file, which held the file', async () => {
  const d = freshDir('fold-file-node');
  const base = join(d, 'base.qcow2');
  const top = join(d, 'top.qcow2');
  await createQcow2(base, { sizeBytes: 4 * MiB });
  await createQcow2(top, { sizeBytes: 4 * MiB, backing: { path: base } });
  await qemuIoFile(top, 'write -P 7 0 64k');
  const q = await blockQemu([top]);
  const chain = await queryChain(q.qmp, 'disk0');
  assert.equal(chain.length, 2);
  const r = await commitOverlay(q.qmp, { active: 'disk0', base: chain[1]!.nodeName });
  assert.deepEqual(r.removed.map((x) => x.node), ['disk0']);
  const names = (await q.qmp.execute<{ 'node-name': string }[]>('query-named-block-nodes', { flat: true })).map((n) => n['node-name']);
  assert.ok(!names.includes('disk0') && !names.includes('disk0-file'), `nodes left: ${names.join(', ')}`);
  // Nothing holds the top any more: another process may take its write lock.
  await qemuIoFile(top, 'write -P 8 0 4k');
  await q.quit();
});

// ---- snapshots and bitmaps without a guest ----

test('a multi-disk checkpoint snapshot: prepared ahead, one transaction, per-disk changes; cancel and no-checkpoint tracking', async () => {
  const d = freshDir('cbt-multi');
  const a = join(d, 'a.qcow2');
  const b = join(d, 'b.qcow2');
  const sock = join(d, 'nbd.sock');
  await createQcow2(a, { sizeBytes: 16 * MiB });
  await createQcow2(b, { sizeBytes: 8 * MiB });
  const q = await blockQemu([a, b]);
  await startChangeTracking(q.qmp, 'disk0');
  await startChangeTracking(q.qmp, 'disk1');
  await qemuIo(q, 'disk0', 'write -P 1 0 4k');
  await qemuIo(q, 'disk1', 'write -P 1 1M 4k');
  const member = (i: number, s: string): { node: string; overlayPath: string; overlayNode: string } => ({ node: `disk${i}`, overlayPath: join(d, `${s}-${i}.qcow2`), overlayNode: `${s}${i}` });

  // Cancelled before the transaction: no node, no file.
  const dropped = await prepareSnapshotWithCheckpoint(q.qmp, { disks: [member(0, 'x'), member(1, 'x')], checkpoint: 'c0' });
  assert.ok(existsSync(join(d, 'x-0.qcow2')) && existsSync(join(d, 'x-1.qcow2')));
  await dropped.cancel();
  assert.ok(!existsSync(join(d, 'x-0.qcow2')) && !existsSync(join(d, 'x-1.qcow2')));

  const p = await prepareSnapshotWithCheckpoint(q.qmp, { disks: [member(0, 'o'), member(1, 'o')], checkpoint: 'c1' });
  assert.deepEqual(p.since, ['', '']);
  // Writes between the preparation and the commit still go to the bases, and count.
  await qemuIo(q, 'disk1', 'write -P 2 2M 4k');
  const r = await p.commit();
  assert.equal(await p.commit(), r, 'commit is idempotent');
  assert.deepEqual(r.snapshots.map((x) => [x.node, x.overlayNode]), [['disk0', 'o0'], ['disk1', 'o1']]);
  assert.ok(r.transactionMs > 0);
  // One after the other: ensureNbdServer does not serialise two first starts of the server.
  const changes = [];
  for (const cs of r.checkpoints) changes.push(await readCheckpointChanges(q.qmp, cs, sock));
  assert.deepEqual(changes.map((c) => [c?.since, blocksOf(c!.bitmap)]), [['', [0]], ['', [16, 32]]]);
  for (const cs of r.checkpoints) await endCheckpoint(q.qmp, cs, 'commit');
  await qemuIo(q, 'o0', 'write -P 3 3M 4k');

  // Without a checkpoint, each overlay carries its disk's tracking on (here since c1).
  const n = await snapshotDisksWithCheckpoint(q.qmp, { disks: [{ ...member(0, 'n'), node: 'o0' }, { ...member(1, 'n'), node: 'o1' }] });
  assert.deepEqual(n.checkpoints, []);
  assert.deepEqual((await listDirtyBitmaps(q.qmp, 'n0')).map((x) => x.name), [cbtBitmapName('c1')]);
  assert.deepEqual((await listDirtyBitmaps(q.qmp, 'n1')).map((x) => x.name), [cbtBitmapName('c1')]);
  await q.quit();
});

test('checkpoints without a guest: commit with alsoChanged, abort, invalidate, fold with bitmaps carried, clean and unclean stops', async () => {
  const d = freshDir('cbt');
  const base = join(d, 'base.qcow2');
  const sock = join(d, 'nbd.sock');
  await createQcow2(base, { sizeBytes: 64 * MiB });
  let q = await blockQemu([base]);
  await startChangeTracking(q.qmp, 'disk0');
  await assert.rejects(startChangeTracking(q.qmp, 'disk0'), /already tracks changes/);
  await qemuIo(q, 'disk0', 'write -P 1 0 4k');
  await qemuIo(q, 'disk0', 'write -P 1 1M 4k');
  await qemuIo(q, 'disk0', 'write -z 2M 64k');
  // A recording bitmap on a writable node is read through a frozen copy.
  assert.deepEqual(blocksOf(await readDirtyBitmap(q.qmp, { node: 'disk0', name: cbtBitmapName(''), socketPath: sock })), [0, 16, 32]);

  const cs1 = await snapshotWithCheckpoint(q.qmp, { node: 'disk0', overlayPath: join(d, 'ov1.qcow2'), overlayNode: 'ov1', checkpoint: 'b1' });
  assert.equal(cs1.since, '');
  assert.equal(cs1.snapshot.node, 'disk0');
  await qemuIo(q, 'ov1', 'write -P 2 3M 4k');
  const ch1 = await readCheckpointChanges(q.qmp, cs1, sock);
  assert.equal(ch1?.since, '');
  assert.deepEqual(blocksOf(ch1!.bitmap), [0, 16, 32], 'the base bitmap froze at the snapshot');
  // A backup clone's own writes (blocks 320 and 322) count as changed since the new checkpoint.
  const also = new Uint32Array(32);
  also[10] = 0b101;
  await endCheckpoint(q.qmp, cs1, 'commit', { alsoChanged: also, socketPath: sock });

  const cs2 = await snapshotWithCheckpoint(q.qmp, { node: 'ov1', overlayPath: join(d, 'ov2.qcow2'), overlayNode: 'ov2', checkpoint: 'b2' });
  assert.equal(cs2.since, 'b1');
  await qemuIo(q, 'ov2', 'write -P 3 5M 4k');
  assert.deepEqual(blocksOf((await readCheckpointChanges(q.qmp, cs2, sock))!.bitmap), [48, 320, 322]);
  // abort: tracking goes on from b1, with the b2 window's bits merged back.
  await endCheckpoint(q.qmp, cs2, 'abort');
  assert.deepEqual((await listDirtyBitmaps(q.qmp, 'ov2')).map((b) => b.name), [cbtBitmapName('b1')]);
  assert.deepEqual(blocksOf(await readDirtyBitmap(q.qmp, { node: 'ov2', name: cbtBitmapName('b1'), socketPath: sock })), [48, 80, 320, 322]);

  // invalidate: the next snapshot has no changes (a full backup) and starts tracking afresh.
  const cs3 = await snapshotWithCheckpoint(q.qmp, { node: 'ov2', overlayPath: join(d, 'ov3.qcow2'), overlayNode: 'ov3', checkpoint: 'b3' });
  assert.equal(cs3.since, 'b1');
  await endCheckpoint(q.qmp, cs3, 'invalidate');
  assert.equal(trackingState(await listDirtyBitmaps(q.qmp, 'ov3')).since, null);
  const cs4 = await snapshotWithCheckpoint(q.qmp, { node: 'ov3', overlayPath: join(d, 'ov4.qcow2'), overlayNode: 'ov4', checkpoint: 'b4' });
  assert.equal(cs4.since, null);
  assert.equal(await readCheckpointChanges(q.qmp, cs4, sock), null);
  await endCheckpoint(q.qmp, cs4, 'commit');
  await qemuIo(q, 'ov4', 'write -P 4 7M 4k');

  // Fold the whole chain back into the base: the top's tracking bitmap is carried, the obsolete ones dropped.
  assert.equal((await queryChain(q.qmp, 'ov4')).length, 5);
  const before = await openQemuExportView(q.qmp, { node: 'ov4', socketPath: sock });
  const hashBefore = await hashDiskView(before);
  await before.close();
  const folded = await commitOverlay(q.qmp, { active: 'ov4', base: 'disk0', beforeComplete: (l) => carryBitmapsOnCommit(q.qmp, l), deleteFiles: true });
  assert.deepEqual(folded.removed.map((r) => r.node), ['ov4', 'ov3', 'ov2', 'ov1']);
  for (const r of folded.removed) assert.ok(!existsSync(r.filename), `${r.filename} deleted`);
  const chain = await queryChain(q.qmp, 'disk0');
  assert.deepEqual(chain.map((n) => [n.nodeName, n.readOnly]), [['disk0', false]]);
  assert.deepEqual(chain[0]!.dirtyBitmaps.map((b) => b.name), [cbtBitmapName('b4')]);
  assert.deepEqual(blocksOf(await readDirtyBitmap(q.qmp, { node: 'disk0', name: cbtBitmapName('b4'), socketPath: sock })), [112]);
  const afterFold = await openQemuExportView(q.qmp, { node: 'disk0', socketPath: sock });
  assert.equal(await hashDiskView(afterFold), hashBefore);
  await afterFold.close();

  // A clean quit stores the bitmap in the image; the next QEMU loads it with its bits.
  await q.quit();
  const stored = (await imageInfo(base))[0]!.bitmaps;
  assert.deepEqual(stored, [{ name: cbtBitmapName('b4'), granularity: DISK_BLOCK_SIZE, flags: ['auto'] }]);
  q = await blockQemu([base]);
  assert.equal(trackingState(await listDirtyBitmaps(q.qmp, 'disk0')).since, 'b4');
  assert.deepEqual(blocksOf(await readDirtyBitmap(q.qmp, { node: 'disk0', name: cbtBitmapName('b4'), socketPath: sock })), [112]);
  // An unclean stop (SIGKILL) leaves it marked in use: the next QEMU loads it inconsistent, and the next
  // snapshot reports no changes (a full backup), never a wrong incremental.
  q.kill('SIGKILL');
  await q.exited;
  assert.deepEqual((await imageInfo(base, { forceShare: true }))[0]!.bitmaps[0]!.flags.sort(), ['auto', 'in-use']);
  q = await blockQemu([base]);
  const lost = await listDirtyBitmaps(q.qmp, 'disk0');
  assert.equal(lost[0]?.inconsistent, true);
  assert.equal(trackingState(lost).since, null);
  const cs5 = await snapshotWithCheckpoint(q.qmp, { node: 'disk0', overlayPath: join(d, 'ov5.qcow2'), overlayNode: 'ov5', checkpoint: 'b5' });
  assert.equal(cs5.since, null);
  assert.deepEqual((await listDirtyBitmaps(q.qmp, 'disk0')).map((b) => b.name), [], 'the inconsistent bitmap was removed');
  await q.quit();
});

// ---- the real guest ----

test('a guest writes around external snapshots taken in paused windows: point-in-time bases, bitmaps match the writes, and persist', { timeout: 300_000 }, async (t) => {
  const guest = await ensureTestGuest();
  const d = freshDir('guest');
  const disk = join(d, 'disk.qcow2');
  const ov1 = join(d, 'disk-s1.qcow2');
  const ov2 = join(d, 'disk-s2.qcow2');
  const ov3 = join(d, 'disk-s3.qcow2');
  const sock = join(d, 'nbd.sock');
  await createQcow2(disk, { sizeBytes: 64 * MiB });

  const spec = (path: string, paused: boolean): QemuMachineSpec => ({
    name: 'blk',
    memoryMib: 256,
    vcpus: 1,
    cpuModel: 'qemu64',
    accel: 'tcg',
    kernel: guest.kernel,
    initrd: guest.initrd,
    append: 'console=ttyS0 doppel.mem_mib=16 doppel.rate=2000 quiet',
    disks: [{ path, format: 'qcow2' }],
    nics: [],
    serialSocket: join(d, 'serial.sock'),
    qmpSocket: join(d, 'qmp.sock'),
    paused,
  });
  const s = spec(disk, true);
  const q = await QemuProcess.start({ args: buildQemuArgs(s), qmpSocketPath: s.qmpSocket });
  qemus.push(q);
  const serial = await SerialConsole.connect(s.serialSocket);
  closers.push(async () => serial.close());
  const bootAt = Date.now();
  await q.qmp.execute('cont');
  await serial.waitFor(/DOPPEL-GUEST READY/, 120_000);
  t.diagnostic(`guest READY in ${Date.now() - bootAt} ms`);

  const qmp = q.qmp;
  assert.equal(await activeNode(qmp, 'disk0-dev'), 'disk0');
  await startChangeTracking(qmp, 'disk0');
  assert.equal((await serial.command('disk 50', /DISK .*|ERR .*/, 60_000))[0], 'DISK wrote=50');

  /** Stops the vCPUs, runs fn in the suspended window, resumes; returns fn's result and the pause. */
  const pausedWindow = async <T>(fn: () => Promise<T>): Promise<{ value: T; pauseMs: number }> => {
    let seq = qmp.lastEventSeq;
    await qmp.execute('stop');
    await qmp.waitForEvent('STOP', { afterSeq: seq });
    const t0 = performance.now();
    const value = await fn();
    const pauseMs = performance.now() - t0;
    seq = qmp.lastEventSeq;
    await qmp.execute('cont');
    await qmp.waitForEvent('RESUME', { afterSeq: seq });
    return { value, pauseMs };
  };

  // Snapshot 1 in a paused window: the base freezes, the guest goes on in the overlay. The overlay is prepared
  // before the window, so the window holds only the transaction.
  const snap1 = { node: 'disk0', overlayPath: ov1, overlayNode: 'disk0-s1', checkpoint: 'b1' };
  const prepared = await prepareExternalSnapshot(qmp, snap1);
  const w1 = await pausedWindow(() => snapshotWithCheckpoint(qmp, { ...snap1, prepared }));
  const cs1 = w1.value;
  t.diagnostic(`snapshot 1 (prepared): ${w1.pauseMs.toFixed(1)} ms in the paused window (transaction ${cs1.snapshot.transactionMs.toFixed(1)} ms)`);
  assert.equal(await activeNode(qmp, 'disk0-dev'), 'disk0-s1');
  assert.deepEqual((await queryChain(qmp, 'disk0-s1')).map((n) => [n.nodeName, n.readOnly]), [['disk0-s1', false], ['disk0', true]]);

  // The frozen base, read on the host through qemu-nbd while the guest runs on the overlay.
  const base1 = await view(disk);
  const written1 = await diffViews(null, base1);
  assert.ok(written1.length >= 40 && written1.length <= 50, `the first 50 writes hit ${written1.length} blocks`);
  assert.deepEqual(allocatedOf(base1), written1, 'the base holds exactly the written blocks');
  const hash1 = await hashDiskView(base1);
  const changes1 = await readCheckpointChanges(qmp, cs1, sock);
  assert.equal(changes1?.since, '');
  assert.deepEqual(blocksOf(changes1!.bitmap), written1, 'the bitmap started before the writes holds exactly the written blocks');
  await endCheckpoint(qmp, cs1, 'commit');

  // More guest writes go to the overlay; the base still reads the same, through qemu-nbd and through QEMU.
  assert.equal((await serial.command('disk 50', /DISK .*|ERR .*/, 60_000))[0], 'DISK wrote=50');
  assert.equal(await hashDiskView(base1), hash1, 'the base is point-in-time');
  const fresh = await openQcow2View(disk);
  assert.equal(await hashDiskView(fresh), hash1);
  await fresh.close();
  const viaQemu = await openQemuExportView(qmp, { node: 'disk0', socketPath: sock });
  assert.equal(await hashDiskView(viaQemu), hash1);
  await viaQemu.close();

  // Snapshot 2 freezes the first overlay: it holds exactly the second round's writes.
  const w2 = await pausedWindow(() => snapshotWithCheckpoint(qmp, { node: 'disk0-s1', overlayPath: ov2, overlayNode: 'disk0-s2', checkpoint: 'b2' }));
  const cs2 = w2.value;
  t.diagnostic(`snapshot 2 (unprepared: qemu-img create and blockdev-add in the window): ${w2.pauseMs.toFixed(1)} ms in the paused window`);
  const s1 = await view(ov1);
  const written2 = await diffViews(base1, s1);
  assert.ok(written2.length >= 40 && written2.length <= 50, `the second 50 writes hit ${written2.length} blocks`);
  assert.deepEqual(blocksOf(allocationBitmap(await imageMap(ov1), 64 * MiB, { maxDepth: 0 })), written2, 'the overlay holds the new writes');
  const changes2 = await readCheckpointChanges(qmp, cs2, sock);
  assert.equal(changes2?.since, 'b1');
  assert.deepEqual(blocksOf(changes2!.bitmap), written2);
  assert.equal(await hashDiskView(base1), hash1);
  await endCheckpoint(qmp, cs2, 'commit');
  assert.match((await serial.command('diskcheck', /DISKCHECK .*|ERR .*/, 60_000))[0], /^DISKCHECK ok /);

  // Snapshot 3 while the guest runs and writes: a loop of small fsynced write rounds goes on around it, and each
  // write lands in exactly one layer (QEMU drains in-flight requests inside the transaction).
  let writing = true;
  let rounds = 0;
  const writer = (async () => {
    while (writing) {
      assert.equal((await serial.command('disk 4', /DISK .*|ERR .*/, 60_000))[0], 'DISK wrote=4');
      rounds++;
    }
  })();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const roundsBefore = rounds;
  const cs3 = await snapshotWithCheckpoint(qmp, { node: 'disk0-s2', overlayPath: ov3, overlayNode: 'disk0-s3', checkpoint: 'b3' });
  const roundsAt = rounds;
  await new Promise((resolve) => setTimeout(resolve, 300));
  writing = false;
  await writer;
  t.diagnostic(`running snapshot: ${roundsBefore}-${roundsAt} write rounds before it, ${rounds} in all`);
  const changes3 = await readCheckpointChanges(qmp, cs3, sock);
  await endCheckpoint(qmp, cs3, 'commit');
  assert.match((await serial.command('diskcheck', /DISKCHECK .*|ERR .*/, 60_000))[0], /^DISKCHECK ok /);
  await q.quit();
  serial.close();
  // After a clean quit every bitmap is stored in its image.
  const s2 = await view(ov2);
  const s3 = await view(ov3);
  const written3 = await diffViews(s1, s2);
  const written4 = await diffViews(s2, s3);
  t.diagnostic(`blocks written: ${written1.length}, ${written2.length} (50 random 4 KiB writes each); the snapshot of the running guest split the write loop's blocks into ${written3.length} + ${written4.length}`);
  assert.deepEqual(blocksOf(changes3!.bitmap), written3, 'the bitmap frozen by a snapshot of the running guest matches its layer');
  assert.ok(written3.length > 0 && written4.length > 0, 'the guest wrote on both sides of the running snapshot');
  assert.deepEqual((await imageInfo(ov3))[0]!.bitmaps, [{ name: cbtBitmapName('b3'), granularity: DISK_BLOCK_SIZE, flags: ['auto'] }]);
  const hashTop = await hashDiskView(s3);
  for (const v of [base1, s1, s2, s3]) await v.close();

  // A new QEMU on the newest overlay (the backing chain opens from the headers, with generated node names).
  const r = spec(ov3, true);
  const q2 = await QemuProcess.start({ args: buildQemuArgs(r), qmpSocketPath: r.qmpSocket });
  qemus.push(q2);
  const chain = await queryChain(q2.qmp, 'disk0');
  assert.deepEqual(chain.map((n) => n.filename), [ov3, ov2, ov1, disk]);
  assert.deepEqual(chain.map((n) => n.dirtyBitmaps.map((b) => b.name)), [[cbtBitmapName('b3')], [cbtBitmapName('b2')], [cbtBitmapName('b1')], [cbtBitmapName('')]]);
  const read = (node: string, since: string): Promise<Uint32Array> => readDirtyBitmap(q2.qmp, { node, name: cbtBitmapName(since), socketPath: sock });
  assert.deepEqual(blocksOf(await read('disk0', 'b3')), written4, 'the live bitmap survived the restart');
  assert.deepEqual(blocksOf(await read(chain[1]!.nodeName, 'b2')), written3, 'so did the frozen ones');
  assert.deepEqual(blocksOf(await read(chain[2]!.nodeName, 'b1')), written2);
  assert.deepEqual(blocksOf(await read(chain[3]!.nodeName, '')), written1);

  // Fold the chain back into the original image, carrying the live bitmap.
  const folded = await commitOverlay(q2.qmp, { active: 'disk0', base: chain[3]!.nodeName, beforeComplete: (l) => carryBitmapsOnCommit(q2.qmp, l) });
  t.diagnostic(`fold of 3 overlays into the base: ${folded.durationMs.toFixed(0)} ms`);
  const after = await queryChain(q2.qmp, await activeNode(q2.qmp, 'disk0-dev'));
  assert.deepEqual(after.map((n) => n.filename), [disk]);
  assert.deepEqual(after[0]!.dirtyBitmaps.map((b) => b.name), [cbtBitmapName('b3')]);
  assert.deepEqual(blocksOf(await read(after[0]!.nodeName, 'b3')), written4);
  const foldedView = await openQemuExportView(q2.qmp, { node: after[0]!.nodeName, socketPath: sock });
  assert.equal(await hashDiskView(foldedView), hashTop);
  await foldedView.close();
  await q2.quit();
  assert.deepEqual(await checkImage(disk), { corruptions: 0, leaks: 0, checkErrors: 0 });
});

test('external snapshot of a running QEMU: AlreadyExists and NotFound leave nothing behind', async () => {
  const d = freshDir('snap-errors');
  const base = join(d, 'base.qcow2');
  await createQcow2(base, { sizeBytes: 16 * MiB });
  const q = await blockQemu([base]);
  try {
    await assert.rejects(createExternalSnapshot(q.qmp, { node: 'nope', overlayPath: join(d, 'o.qcow2'), overlayNode: 'o1' }), NotFoundError);
    assert.ok(!existsSync(join(d, 'o.qcow2')));
    writeFileSync(join(d, 'taken.qcow2'), '');
    await assert.rejects(createExternalSnapshot(q.qmp, { node: 'disk0', overlayPath: join(d, 'taken.qcow2'), overlayNode: 'o1' }), /already exists/);
    await assert.rejects(createExternalSnapshot(q.qmp, { node: 'disk0', overlayPath: join(d, 'o.qcow2'), overlayNode: 'bad name' }), InvalidArgumentError);
    // A failing transaction action undoes the snapshot and removes the overlay.
    await assert.rejects(
      createExternalSnapshot(q.qmp, { node: 'disk0', overlayPath: join(d, 'o.qcow2'), overlayNode: 'o1', extraActions: [{ type: 'block-dirty-bitmap-add', data: { node: 'nope', name: 'x' } }] }),
      /nope/,
    );
    assert.ok(!existsSync(join(d, 'o.qcow2')));
    assert.deepEqual((await queryChain(q.qmp, 'disk0')).map((n) => n.nodeName), ['disk0']);
    const snap = await createExternalSnapshot(q.qmp, { node: 'disk0', overlayPath: join(d, 'o.qcow2'), overlayNode: 'o1' });
    assert.equal(snap.sizeBytes, 16 * MiB);
    await assert.rejects(createExternalSnapshot(q.qmp, { node: 'disk0', overlayPath: join(d, 'o2.qcow2'), overlayNode: 'o2' }), /read-only/);
  } finally {
    await q.quit();
  }
});

// ---- throughput ----

test('NBD read throughput of a 256 MiB qcow2 (qemu-nbd, QEMU export) against a raw copy', { timeout: 300_000 }, async (t) => {
  const d = freshDir('tput');
  const raw = join(d, 'src.raw');
  const img = join(d, 'disk.qcow2');
  const size = 256 * MiB;
  // Three blocks in four hold random bytes; the rest are holes.
  const chunk = Buffer.alloc(16 * MiB);
  const fh = await open(raw, 'w');
  for (let off = 0; off < size; off += chunk.length) {
    randomFillSync(chunk);
    for (let b = 3; b < chunk.length / DISK_BLOCK_SIZE; b += 4) chunk.fill(0, b * DISK_BLOCK_SIZE, (b + 1) * DISK_BLOCK_SIZE);
    await fh.write(chunk, 0, chunk.length, off);
  }
  await fh.close();
  await convertImage(raw, img, { sourceFormat: 'raw', targetFormat: 'qcow2' });
  const want = await sha256File(raw);

  const readAll = async (v: DiskView): Promise<number> => {
    const buf = Buffer.allocUnsafe(64 * DISK_BLOCK_SIZE);
    const t0 = performance.now();
    for (let b = 0; b < v.blockCount; b += 64) await v.read(b, Math.min(64, v.blockCount - b), buf);
    return performance.now() - t0;
  };
  const mbps = (ms: number): string => ((size / MiB) / (ms / 1000)).toFixed(0);

  const rss0 = process.memoryUsage().rss;
  const nbd = await openQcow2View(img);
  assert.equal(nbd.allocatedBlocks(), (size / DISK_BLOCK_SIZE) * 0.75);
  const ms1 = await readAll(nbd);
  const ms2 = await readAll(nbd);
  const rss1 = process.memoryUsage().rss;
  assert.equal(await hashDiskView(nbd), want);
  await nbd.close();
  t.diagnostic(`qemu-nbd: 256 MiB read in ${ms1.toFixed(0)} ms (${mbps(ms1)} MiB/s), again in ${ms2.toFixed(0)} ms (${mbps(ms2)} MiB/s); RSS grew ${((rss1 - rss0) / MiB).toFixed(1)} MiB`);
  assert.ok(rss1 - rss0 < 128 * MiB, `reading 256 MiB must not hold it in memory (RSS grew ${rss1 - rss0} bytes)`);

  const q = await blockQemu([img]);
  const ev = await openQemuExportView(q.qmp, { node: 'disk0', socketPath: join(d, 'nbd.sock') });
  const ms3 = await readAll(ev);
  assert.equal(await hashDiskView(ev), want);
  await ev.close();
  await q.quit();
  t.diagnostic(`QEMU NBD export: 256 MiB read in ${ms3.toFixed(0)} ms (${mbps(ms3)} MiB/s)`);

  const t0 = performance.now();
  const rawView = await openRawCopyView(img, d);
  const convertMs = performance.now() - t0;
  const ms4 = await readAll(rawView);
  assert.equal(await hashDiskView(rawView), want);
  await rawView.close();
  t.diagnostic(`raw copy: qemu-img convert ${convertMs.toFixed(0)} ms, then read in ${ms4.toFixed(0)} ms; ${mbps(convertMs + ms4)} MiB/s overall`);
});
