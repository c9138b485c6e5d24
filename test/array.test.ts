/**
 * The simulated storage array against a real HTTP server on 127.0.0.1 and real files: volumes and bad
 * requests, the data path, consistency-group snapshots under concurrent writes, snapshot reads, exact
 * allocated and diff bitmaps, deletion, a restart on the same directory, injected faults, an
 * unreachable or silent array, and the bearer token. Everything through the agent's ArrayClient, except
 * where the HTTP status itself is the point.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  AlreadyExistsError,
  DeadlineExceededError,
  DoppelError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnauthenticatedError,
  UnavailableError,
  silentLogger,
} from '../shared/src/mod.js';
import { ARRAY_BLOCK_SIZE, bitmapByteLength, hasBlock, setBlocks } from '../shared/src/array/mod.js';
import { startArrayServer, type ArrayServer, type ArrayServerOptions } from '../array/src/mod.js';
import { ArrayClient, type ArrayBitmap } from '../agent/src/array/client.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** The CLI from its sources (no build needed). */
const doppelArgs = ['--import', 'tsx', path.join(root, 'cli', 'src', 'main.ts')];
const KiB = 1024;
const MiB = 1024 * KiB;
const B = ARRAY_BLOCK_SIZE;
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function tempDir(label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `doppel-array-${label}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startArray(
  label: string,
  opts: Partial<ArrayServerOptions> = {},
): Promise<{ srv: ArrayServer; client: ArrayClient; dir: string }> {
  const dir = opts.dir ?? tempDir(label);
  const srv = await startArrayServer({ listen: '127.0.0.1:0', log: silentLogger(), ...opts, dir });
  cleanups.push(() => srv.close());
  const client = new ArrayClient({ url: srv.url, timeoutMs: 10_000, ...(opts.token !== undefined ? { token: opts.token } : {}) });
  return { srv, client, dir };
}

/** Asserts that `p` rejects with an error of class `Cls` whose message matches `re`; returns it. */
async function rejectsWith(p: Promise<unknown>, Cls: new (...a: never[]) => DoppelError, re?: RegExp): Promise<DoppelError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof Cls, `expected ${Cls.name}, got ${String(err)}`);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected ${Cls.name}, but the call succeeded`);
}

/** A raw HTTP call: status and parsed JSON (the HTTP status itself is under test). */
async function raw(url: string, method: string, p: string, body?: string | Uint8Array, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown }> {
  const res = await fetch(url + p, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json };
}

function errorOf(json: unknown): { name: string; code: string; message: string } {
  const e = (json as { error?: { name: string; code: string; message: string } }).error;
  assert.ok(e, `expected an error body, got ${JSON.stringify(json)}`);
  return e;
}

function bitmapOf(blocks: number, set: number[]): Uint8Array {
  const out = new Uint8Array(bitmapByteLength(blocks));
  for (const b of set) out[b >> 3] = (out[b >> 3] ?? 0) | (1 << (b & 7));
  return out;
}

function assertBitmap(got: ArrayBitmap, blocks: number, want: number[], what: string): void {
  assert.equal(got.blockSize, B, what);
  assert.equal(got.blocks, blocks, what);
  assert.deepEqual([...setBlocks(got.bitmap)], want, what);
  assert.deepEqual(got.bitmap, bitmapOf(blocks, want), `${what}: bytes`);
}

/** A 4 KiB block carrying `n` (and its complement, so a torn or zero block never passes). */
function counterBlock(n: number): Buffer {
  const b = Buffer.alloc(4096);
  b.writeBigUInt64LE(BigInt(n), 0);
  b.writeBigUInt64LE(~BigInt(n) & 0xffffffffffffffffn, 8);
  return b;
}

function counterOf(b: Buffer): number {
  const n = b.readBigUInt64LE(0);
  assert.equal(b.readBigUInt64LE(8), ~n & 0xffffffffffffffffn, 'counter block is whole');
  return Number(n);
}

test('volumes: create, list, get, delete, and every bad request a clear 4xx', async () => {
  const { client, srv } = await startArray('crud');
  const v = await client.createVolume('vol-a', 4);
  assert.equal(v.name, 'vol-a');
  assert.equal(v.sizeBytes, 4 * MiB);
  assert.equal(v.blockSize, 64 * KiB);
  assert.deepEqual(v.snapshots, []);
  await client.createVolume('vol_b', 1);
  assert.deepEqual((await client.listVolumes()).map((x) => [x.name, x.sizeBytes]), [['vol-a', 4 * MiB], ['vol_b', MiB]]);
  assert.equal((await client.getVolume('vol_b')).sizeBytes, MiB);
  assert.deepEqual(await client.info().then((i) => [i.blockSize, i.volumes, i.snapshots]), [B, 2, 0]);
  await rejectsWith(client.createVolume('vol-a', 4), AlreadyExistsError, /already has a volume 'vol-a'/);
  await rejectsWith(client.getVolume('nope'), NotFoundError, /no volume 'nope'/);
  await rejectsWith(client.createVolume('x', 0), InvalidArgumentError, /sizeMib must be an integer from 1/);
  await rejectsWith(client.createVolume('x', 1.5), InvalidArgumentError, /sizeMib/);
  await rejectsWith(client.createVolume('x', 2 * 1024 * 1024), InvalidArgumentError, /sizeMib/);
  await client.deleteVolume('vol_b');
  await rejectsWith(client.getVolume('vol_b'), NotFoundError);
  await rejectsWith(client.deleteVolume('vol_b'), NotFoundError);

  // The HTTP statuses and error bodies themselves.
  const u = srv.url;
  const expect = async (r: Promise<{ status: number; json: unknown }>, status: number, name: string, re?: RegExp) => {
    const { status: s, json } = await r;
    assert.equal(s, status, JSON.stringify(json));
    const e = errorOf(json);
    assert.equal(e.name, name);
    if (re) assert.match(e.message, re);
  };
  const post = (p: string, body: unknown) => raw(u, 'POST', p, typeof body === 'string' ? body : JSON.stringify(body), { 'content-type': 'application/json' });
  await expect(post('/v1/volumes', { name: 'a'.repeat(64), sizeMib: 1 }), 400, 'InvalidArgumentError', /1-63 characters/);
  await expect(post('/v1/volumes', { name: 'bad name', sizeMib: 1 }), 400, 'InvalidArgumentError');
  await expect(post('/v1/volumes', { name: '', sizeMib: 1 }), 400, 'InvalidArgumentError');
  await expect(post('/v1/volumes', { name: 'ok', sizeMib: '1' }), 400, 'InvalidArgumentError', /sizeMib must be a number/);
  await expect(post('/v1/volumes', { name: 'ok', sizeMib: 1, extra: true }), 400, 'InvalidArgumentError', /unknown field extra/);
  await expect(post('/v1/volumes', '{not json'), 400, 'InvalidArgumentError', /JSON object/);
  await expect(post('/v1/volumes', '[1,2]'), 400, 'InvalidArgumentError', /JSON object/);
  await expect(post('/v1/volumes', { name: 'vol-a', sizeMib: 1 }), 409, 'AlreadyExistsError');
  await expect(raw(u, 'GET', '/v1/volumes/nope'), 404, 'NotFoundError');
  await expect(raw(u, 'GET', '/v1/volumes/%E0%A4%A'), 400, 'InvalidArgumentError', /malformed path/);
  await expect(raw(u, 'GET', '/v1/nothing'), 404, 'NotFoundError', /no route GET \/v1\/nothing/);
  await expect(raw(u, 'PATCH', '/v1/volumes'), 405, 'InvalidArgumentError', /allowed: GET, POST/);
  await expect(raw(u, 'GET', '/v1/volumes/vol-a/data?offset=0'), 400, 'InvalidArgumentError', /'length' is required/);
  await expect(raw(u, 'GET', '/v1/volumes/vol-a/data?offset=-4096&length=4096'), 400, 'InvalidArgumentError', /whole number/);
  await expect(raw(u, 'GET', '/v1/volumes/vol-a/data?offset=100&length=4096'), 400, 'InvalidArgumentError', /read offset must be a multiple of 4096/);
  await expect(raw(u, 'GET', '/v1/volumes/vol-a/data?offset=0&length=1000'), 400, 'InvalidArgumentError', /read length/);
  await expect(raw(u, 'GET', '/v1/volumes/vol-a/data?offset=0&length=0'), 400, 'InvalidArgumentError', /read length/);
  await expect(raw(u, 'GET', `/v1/volumes/vol-a/data?offset=0&length=${16 * MiB}`), 400, 'InvalidArgumentError', /read length/);
  await expect(raw(u, 'GET', `/v1/volumes/vol-a/data?offset=${4 * MiB}&length=4096`), 400, 'InvalidArgumentError', /past the end of volume 'vol-a'/);
  await expect(raw(u, 'PUT', '/v1/volumes/vol-a/data?offset=0', Buffer.alloc(100)), 400, 'InvalidArgumentError', /write length/);
  await expect(raw(u, 'PUT', '/v1/volumes/vol-a/data?offset=0', Buffer.alloc(0)), 400, 'InvalidArgumentError', /write length/);
  await expect(raw(u, 'PUT', `/v1/volumes/vol-a/data?offset=${4 * MiB - 4096}`, Buffer.alloc(8192)), 400, 'InvalidArgumentError', /past the end/);
  await expect(raw(u, 'PUT', '/v1/volumes/nope/data?offset=0', Buffer.alloc(4096)), 404, 'NotFoundError');
  await expect(raw(u, 'PUT', '/v1/volumes/vol-a/data?offset=0', Buffer.alloc(8 * MiB + 4096)), 413, 'ResourceExhaustedError', /over the limit of 8388608 bytes/);
  await expect(post('/v1/snapshots', { volumes: [] }), 400, 'InvalidArgumentError', /1 to 64 volumes/);
  await expect(post('/v1/snapshots', { volumes: ['vol-a', 'vol-a'] }), 400, 'InvalidArgumentError', /each volume once/);
  await expect(post('/v1/snapshots', { volumes: 'vol-a' }), 400, 'InvalidArgumentError', /list of volume names/);
  await expect(post('/v1/snapshots', { volumes: ['vol-a'], label: 'x'.repeat(300) }), 400, 'InvalidArgumentError', /label/);
  await expect(post('/v1/snapshots', { volumes: ['vol-a', 'nope'] }), 404, 'NotFoundError', /no volume 'nope'/);
  await expect(raw(u, 'GET', '/v1/snapshots/not-an-id'), 400, 'InvalidArgumentError', /snapshot id/);
  await expect(raw(u, 'GET', '/v1/snapshots/snap-0000000000000000'), 404, 'NotFoundError');
  await expect(post('/v1/writes', { writes: [{ volume: 'vol-a', offset: 0, data: '!!!!' }] }), 400, 'InvalidArgumentError', /base64/);
  await expect(post('/v1/admin/faults', { refuseSnapshots: 'yes' }), 400, 'InvalidArgumentError', /true or false/);
  // The failed snapshots above left nothing behind, and the server still serves.
  assert.equal((await client.listSnapshots()).length, 0);
  assert.equal((await client.getVolume('vol-a')).name, 'vol-a');
});

test('data path: writes and reads round trip at any aligned offset; unwritten reads as zeros', async () => {
  const { client } = await startArray('data');
  await client.createVolume('d', 16);
  assert.deepEqual(await client.read('d', 0, 256 * KiB), Buffer.alloc(256 * KiB));
  const model = Buffer.alloc(16 * MiB);
  const put = async (offset: number, len: number) => {
    const data = randomBytes(len);
    await client.write('d', offset, data);
    data.copy(model, offset);
  };
  await put(0, 4096); // a partial block
  await put(60 * KiB, 8 * KiB); // across a block boundary
  await put(3 * B, 2 * B); // whole blocks
  await put(3 * B + 4096, 4096); // into a block the layer has
  await put(5 * MiB + 12 * KiB, 3 * MiB); // unaligned to blocks, long
  await put(16 * MiB - 8 * MiB, 8 * MiB); // the largest write, at the end
  for (const [off, len] of [
    [0, 64 * KiB],
    [0, 8 * MiB],
    [8 * MiB, 8 * MiB],
    [60 * KiB, 12 * KiB],
    [5 * MiB, 4096],
  ] as const) {
    assert.deepEqual(await client.read('d', off, len), model.subarray(off, off + len), `read at ${off}+${len}`);
  }
  // An atomic batch across volumes.
  await client.createVolume('e', 1);
  await client.writeBatch([
    { volume: 'd', offset: 0, data: Buffer.alloc(4096, 7) },
    { volume: 'e', offset: 4096, data: Buffer.alloc(4096, 9) },
  ]);
  assert.deepEqual(await client.read('d', 0, 4096), Buffer.alloc(4096, 7));
  assert.deepEqual(await client.read('e', 0, 8192), Buffer.concat([Buffer.alloc(4096), Buffer.alloc(4096, 9)]));
  // A batch with one bad write writes nothing.
  await rejectsWith(
    client.writeBatch([
      { volume: 'd', offset: 0, data: Buffer.alloc(4096, 1) },
      { volume: 'e', offset: MiB, data: Buffer.alloc(4096, 1) },
    ]),
    InvalidArgumentError,
    /write 1 of 4096 bytes at offset 1048576 ends past the end of volume 'e'/,
  );
  assert.deepEqual(await client.read('d', 0, 4096), Buffer.alloc(4096, 7));
});

test('an upload cut off half way is dropped and the array serves on', async () => {
  const { client, srv } = await startArray('cut');
  await client.createVolume('c', 4);
  const { port } = new URL(srv.url);
  await new Promise<void>((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => {
      s.write(`PUT /v1/volumes/c/data?offset=0 HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\n\r\n`);
      s.write(Buffer.alloc(100 * KiB, 1), () => {
        s.destroy();
        resolve();
      });
    });
    s.on('error', reject);
  });
  // Garbage that is not HTTP.
  await new Promise<void>((resolve) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.end('NOT HTTP AT ALL\r\n\r\n'));
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    s.on('close', () => {
      assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(answer, /"name":"InvalidArgumentError"/);
      resolve();
    });
    s.on('error', () => resolve());
  });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await client.read('c', 0, 4096), Buffer.alloc(4096));
  await client.write('c', 0, Buffer.alloc(4096, 2));
  assert.deepEqual(await client.read('c', 0, 4096), Buffer.alloc(4096, 2));
});

test('consistency group: a snapshot of two volumes never falls between two writes of one step', async () => {
  const { client } = await startArray('cg');
  await client.createVolume('img', 8);
  await client.createVolume('byp', 8);
  let stop = false;
  let steps = 0;
  // Writers on their own connections: one step writes the same counter to both volumes (one batch);
  // another loop writes its counter to img and then to byp, each write on its own, awaited.
  const batchLoop = (async () => {
    for (let n = 1; !stop; n++) {
      await client.writeBatch([
        { volume: 'img', offset: 0, data: counterBlock(n) },
        { volume: 'byp', offset: 0, data: counterBlock(n) },
      ]);
      steps = n;
    }
  })();
  const seqLoop = (async () => {
    for (let n = 1; !stop; n++) {
      await client.write('img', 5 * B, counterBlock(n));
      await client.write('byp', 5 * B, counterBlock(n));
    }
  })();
  const ids: string[] = [];
  try {
    while (steps < 5) await new Promise((r) => setTimeout(r, 5));
    for (let i = 0; i < 12; i++) {
      const s = await client.createSnapshot(['img', 'byp'], `cg-${i}`);
      assert.deepEqual(s.volumes, [
        { name: 'img', sizeBytes: 8 * MiB },
        { name: 'byp', sizeBytes: 8 * MiB },
      ]);
      assert.equal(s.label, `cg-${i}`);
      assert.match(s.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      ids.push(s.id);
      await new Promise((r) => setTimeout(r, 3 + (i % 4) * 4));
    }
  } finally {
    stop = true;
    await Promise.all([batchLoop, seqLoop]);
  }
  let prev = 0;
  for (const id of ids) {
    const a = counterOf(await client.readSnapshot(id, 'img', 0, 4096));
    const b = counterOf(await client.readSnapshot(id, 'byp', 0, 4096));
    assert.equal(a, b, `snapshot ${id}: both volumes carry the counter of the same step`);
    assert.ok(a >= prev && a > 0, 'counters only grow');
    prev = a;
    // Dependent writes: byp's write was issued after img's was acknowledged, so byp is img's or one behind.
    const sa = counterOf(await client.readSnapshot(id, 'img', 5 * B, 4096));
    const sb = counterOf(await client.readSnapshot(id, 'byp', 5 * B, 4096));
    assert.ok(sa === sb || sa === sb + 1, `snapshot ${id}: img ${sa}, byp ${sb}`);
  }
  assert.ok(new Set(ids).size === ids.length);
  assert.ok(prev < steps, 'writes went on after the last snapshot');
});

test('snapshots: content stays as it was whatever is written later; O(1) in the volume size', async () => {
  const { client, dir } = await startArray('snap');
  await client.createVolume('v', 1024);
  const old = randomBytes(2 * MiB);
  await client.write('v', 0, old);
  await client.write('v', 512 * MiB, old.subarray(0, 64 * KiB));
  const layerFiles = () => readdirSync(path.join(dir, 'layers')).sort();
  const before = layerFiles();
  const t0 = performance.now();
  const s = await client.createSnapshot(['v']);
  const ms = performance.now() - t0;
  assert.deepEqual(layerFiles(), before, 'taking a snapshot creates or copies no data file');
  assert.ok(ms < 1000, `a snapshot of a 1 GiB volume took ${ms} ms`);
  // Overwrite whole blocks, part of a block, and write where nothing was.
  await client.write('v', 0, Buffer.alloc(64 * KiB, 0xaa));
  await client.write('v', 128 * KiB + 4096, Buffer.alloc(4096, 0xbb));
  await client.write('v', 8 * MiB, Buffer.alloc(4096, 0xcc));
  assert.deepEqual(await client.readSnapshot(s.id, 'v', 0, 2 * MiB), old);
  assert.deepEqual(await client.readSnapshot(s.id, 'v', 8 * MiB, 4096), Buffer.alloc(4096));
  assert.deepEqual(await client.readSnapshot(s.id, 'v', 512 * MiB, 64 * KiB), old.subarray(0, 64 * KiB));
  const live = Buffer.from(old);
  live.fill(0xaa, 0, 64 * KiB);
  live.fill(0xbb, 128 * KiB + 4096, 128 * KiB + 8192);
  assert.deepEqual(await client.read('v', 0, 2 * MiB), live, 'a partial write after the snapshot keeps the rest of its block');
  assert.deepEqual(await client.read('v', 8 * MiB, 4096), Buffer.alloc(4096, 0xcc));
  assert.deepEqual((await client.getSnapshot(s.id)).volumes, [{ name: 'v', sizeBytes: 1024 * MiB }]);
  assert.equal((await client.getSnapshot(s.id)).label, undefined);
  await rejectsWith(client.readSnapshot(s.id, 'other', 0, 4096), NotFoundError, /does not cover volume 'other'/);
  await rejectsWith(client.readSnapshot(s.id, 'v', 1024 * MiB, 4096), InvalidArgumentError, /past the end/);
});

test('allocated and diff bitmaps are exact, before and after a snapshot in between is deleted', async () => {
  const { client, dir } = await startArray('bitmap');
  await client.createVolume('v', 4); // 64 blocks
  await client.createVolume('w', 1);
  const blocks = 64;
  const contents = new Map<string, Buffer>();
  const w = async (block: number, at = 0, len = B) => client.write('v', block * B + at, Buffer.alloc(len, block + 1));
  await w(0);
  await w(3);
  await w(10, 8192, 4096); // part of a block
  const s1 = await client.createSnapshot(['v', 'w']);
  await w(3);
  await w(20);
  await w(63, 60 * KiB, 4096);
  const s2 = await client.createSnapshot(['v']);
  await w(5);
  await w(20, 0, 4096);
  const s3 = await client.createSnapshot(['v']);
  await w(40); // live only
  for (const s of [s1, s2, s3]) contents.set(s.id, await client.readSnapshot(s.id, 'v', 0, 4 * MiB));

  assertBitmap(await client.allocated(s1.id, 'v'), blocks, [0, 3, 10], 'allocated s1');
  assertBitmap(await client.allocated(s2.id, 'v'), blocks, [0, 3, 10, 20, 63], 'allocated s2');
  assertBitmap(await client.allocated(s3.id, 'v'), blocks, [0, 3, 5, 10, 20, 63], 'allocated s3');
  assertBitmap(await client.allocated(s1.id, 'w'), 16, [], 'allocated w');
  assertBitmap(await client.diff(s2.id, 'v', s1.id), blocks, [3, 20, 63], 'diff s1..s2');
  assertBitmap(await client.diff(s3.id, 'v', s2.id), blocks, [5, 20], 'diff s2..s3');
  assertBitmap(await client.diff(s3.id, 'v', s1.id), blocks, [3, 5, 20, 63], 'diff s1..s3');
  assertBitmap(await client.diff(s2.id, 'v', s2.id), blocks, [], 'diff s2..s2');
  const bm = await client.allocated(s2.id, 'v');
  assert.ok(hasBlock(bm.bitmap, 63) && !hasBlock(bm.bitmap, 62));
  assert.equal(bm.bitmap[7], 0x80, 'block 63 is the top bit of byte 7 (LSB first)');
  assert.equal(bm.bitmap[0], 0b1001, 'blocks 0 and 3 are bits 0 and 3 of byte 0');

  await rejectsWith(client.diff(s1.id, 'v', s2.id), InvalidArgumentError, /is newer than snapshot/);
  await rejectsWith(client.diff(s2.id, 'w', s1.id), NotFoundError, /does not cover volume 'w'/);
  const s4 = await client.createSnapshot(['w']);
  await rejectsWith(client.diff(s3.id, 'v', s4.id), InvalidArgumentError, /does not cover volume 'v'/);
  await rejectsWith(client.diff(s3.id, 'v', 'snap-0000000000000000'), NotFoundError);

  // Deleting s2 folds its layer into s3's: s1 and s3 read and diff as before.
  const files = readdirSync(path.join(dir, 'layers')).length;
  await client.deleteSnapshot(s2.id);
  assert.ok(readdirSync(path.join(dir, 'layers')).length < files, 'the deleted snapshot\'s layer files are gone');
  await rejectsWith(client.getSnapshot(s2.id), NotFoundError);
  await rejectsWith(client.diff(s3.id, 'v', s2.id), NotFoundError);
  assertBitmap(await client.diff(s3.id, 'v', s1.id), blocks, [3, 5, 20, 63], 'diff s1..s3 after deleting s2');
  assertBitmap(await client.allocated(s3.id, 'v'), blocks, [0, 3, 5, 10, 20, 63], 'allocated s3 after deleting s2');
  assert.deepEqual(await client.readSnapshot(s1.id, 'v', 0, 4 * MiB), contents.get(s1.id));
  assert.deepEqual(await client.readSnapshot(s3.id, 'v', 0, 4 * MiB), contents.get(s3.id));
  // Deleting the oldest folds it up too.
  await client.deleteSnapshot(s1.id);
  assertBitmap(await client.allocated(s3.id, 'v'), blocks, [0, 3, 5, 10, 20, 63], 'allocated s3 after deleting s1');
  assert.deepEqual(await client.readSnapshot(s3.id, 'v', 0, 4 * MiB), contents.get(s3.id));
  assert.deepEqual((await client.listSnapshots()).map((s) => s.id), [s3.id, s4.id]);
});

test('delete: a volume a snapshot covers is refused; without snapshots its files go', async () => {
  const { client, dir } = await startArray('delete');
  await client.createVolume('a', 2);
  await client.createVolume('b', 2);
  await client.write('a', 0, Buffer.alloc(B, 1));
  const s = await client.createSnapshot(['a', 'b']);
  await client.write('a', 0, Buffer.alloc(B, 2));
  assert.deepEqual((await client.getVolume('a')).snapshots, [s.id]);
  await rejectsWith(client.deleteVolume('a'), FailedPreconditionError, new RegExp(`volume 'a' is covered by snapshot ${s.id}: delete it first`));
  await client.deleteSnapshot(s.id);
  await rejectsWith(client.deleteSnapshot(s.id), NotFoundError);
  assert.deepEqual(await client.read('a', 0, B), Buffer.alloc(B, 2));
  await client.deleteVolume('a');
  await client.deleteVolume('b');
  assert.deepEqual(await client.listVolumes(), []);
  assert.deepEqual(readdirSync(path.join(dir, 'layers')), []);
});

test('persistence: volumes, data, snapshots and bitmaps survive a restart on the same directory', async () => {
  const first = await startArray('restart', { name: 'arr1' });
  const { client, dir } = first;
  await client.createVolume('p', 8);
  const d1 = randomBytes(3 * B);
  await client.write('p', B, d1);
  const s1 = await client.createSnapshot(['p'], 'before');
  const d2 = randomBytes(4096);
  await client.write('p', B + 4096, d2);
  await client.write('p', 7 * MiB, d2);
  const s2 = await client.createSnapshot(['p']);
  await client.write('p', 0, d2);
  const liveBefore = await client.read('p', 0, 8 * MiB);
  await first.srv.close();
  await rejectsWith(client.read('p', 0, 4096), UnavailableError);

  const second = await startArray('restart', { dir });
  const c2 = second.client;
  assert.equal((await c2.info()).name, 'arr1', 'the name is kept');
  assert.deepEqual((await c2.listVolumes()).map((v) => [v.name, v.sizeBytes, v.snapshots]), [['p', 8 * MiB, [s1.id, s2.id]]]);
  assert.deepEqual(await c2.listSnapshots(), [
    { id: s1.id, createdAt: s1.createdAt, label: 'before', volumes: [{ name: 'p', sizeBytes: 8 * MiB }] },
    { id: s2.id, createdAt: s2.createdAt, volumes: [{ name: 'p', sizeBytes: 8 * MiB }] },
  ]);
  assert.deepEqual(await c2.read('p', 0, 8 * MiB), liveBefore);
  assert.deepEqual(await c2.readSnapshot(s1.id, 'p', B, 3 * B), d1);
  assertBitmap(await c2.allocated(s1.id, 'p'), 128, [1, 2, 3], 'allocated s1 after restart');
  assertBitmap(await c2.diff(s2.id, 'p', s1.id), 128, [1, 112], 'diff after restart');
  // Writes and snapshots go on where they left off.
  await c2.write('p', 2 * B, Buffer.alloc(4096, 5));
  const s3 = await c2.createSnapshot(['p']);
  assertBitmap(await c2.diff(s3.id, 'p', s2.id), 128, [0, 2], 'diff s2..s3 after restart');
  assert.deepEqual(await c2.readSnapshot(s2.id, 'p', 0, 8 * MiB), Buffer.concat([Buffer.alloc(B), d1.subarray(0, 4096), d2, d1.subarray(8192), Buffer.alloc(7 * MiB - 4 * B), d2, Buffer.alloc(MiB - 4096)]));
});

test('faults: refused snapshots are a FailedPreconditionError; an unavailable array an UnavailableError', async () => {
  const { client, srv } = await startArray('faults', { refuseSnapshots: true, name: 'arr-f' });
  await client.createVolume('f', 1);
  const e = await rejectsWith(client.createSnapshot(['f']), FailedPreconditionError, /^array arr-f refuses to snapshot: /);
  assert.equal(e.code, 'FAILED_PRECONDITION');
  const r = await raw(srv.url, 'POST', '/v1/snapshots', JSON.stringify({ volumes: ['f'] }));
  assert.equal(r.status, 409);
  assert.deepEqual(Object.keys(errorOf(r.json)), ['name', 'code', 'message']);
  assert.equal(errorOf(r.json).code, 'FAILED_PRECONDITION');
  assert.equal((await client.listSnapshots()).length, 0);
  srv.setFaults({ refuseSnapshots: false });
  await client.createSnapshot(['f']);
  // The same over the admin route.
  assert.deepEqual(await client.setFaults({ refuseSnapshots: true }), { refuseSnapshots: true, unavailable: false });
  await rejectsWith(client.createSnapshot(['f']), FailedPreconditionError);
  await client.setFaults({ refuseSnapshots: false, unavailable: true });
  assert.deepEqual(srv.faults(), { refuseSnapshots: false, unavailable: true });
  await rejectsWith(client.read('f', 0, 4096), UnavailableError, /storage array arr-f is unavailable/);
  assert.equal((await raw(srv.url, 'GET', '/v1/volumes')).status, 503);
  srv.setFaults({ unavailable: false });
  assert.equal((await client.listSnapshots()).length, 1);
});

test('client: an unreachable array is an UnavailableError, a silent one a DeadlineExceededError, both naming its URL', async () => {
  // A port nobody listens on.
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const gone = new ArrayClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 2000 });
  await rejectsWith(gone.listVolumes(), UnavailableError, new RegExp(`^storage array at http://127\\.0\\.0\\.1:${port} is unreachable: ECONNREFUSED`));
  await rejectsWith(gone.createSnapshot(['x']), UnavailableError, /is unreachable/);
  // A server that accepts and never answers.
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => void sockets.add(s));
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((resolve) => silent.close(() => resolve()));
  });
  const url = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const slow = new ArrayClient({ url, timeoutMs: 200 });
  await rejectsWith(slow.read('v', 0, 4096), DeadlineExceededError, new RegExp(`^storage array at ${url.replace(/\./g, '\\.')} did not answer GET /v1/volumes/v/data within 200 ms`));
  await rejectsWith(slow.info({ timeoutMs: 50 }), DeadlineExceededError, /within 50 ms/);
  assert.throws(() => new ArrayClient({ url: 'not a url' }), InvalidArgumentError);
  // Bad arguments never reach the wire.
  await rejectsWith(slow.write('v', 100, Buffer.alloc(4096)), InvalidArgumentError, /write offset/);
  await rejectsWith(slow.getSnapshot('../etc'), InvalidArgumentError, /snapshot id/);
});

test('token: every route needs the bearer token when the array has one', async () => {
  const token = 'array-token-0123456789abcdef';
  const { client, srv } = await startArray('token', { token });
  await client.createVolume('t', 1);
  assert.equal((await client.listVolumes()).length, 1);
  const none = new ArrayClient({ url: srv.url });
  await rejectsWith(none.listVolumes(), UnauthenticatedError, /needs a bearer token/);
  await rejectsWith(none.setFaults({ refuseSnapshots: true }), UnauthenticatedError);
  const wrong = new ArrayClient({ url: srv.url, token: 'x'.repeat(20) });
  await rejectsWith(wrong.read('t', 0, 4096), UnauthenticatedError, /not this storage array's/);
  for (const [m, p] of [
    ['GET', '/v1/volumes'],
    ['GET', '/v1/nothing'],
    ['POST', '/v1/admin/faults'],
    ['PUT', '/v1/volumes/t/data?offset=0'],
  ] as const) {
    const r = await raw(srv.url, m, p, m === 'GET' ? undefined : '{}');
    assert.equal(r.status, 401, `${m} ${p}`);
    assert.equal(errorOf(r.json).name, 'UnauthenticatedError');
  }
  assert.equal((await raw(srv.url, 'GET', '/v1/volumes', undefined, { authorization: `Bearer ${token}` })).status, 200);
  assert.deepEqual(srv.faults(), { refuseSnapshots: false, unavailable: false });
  await assert.rejects(startArrayServer({ dir: tempDir('short'), listen: '127.0.0.1:0', token: 'short' }), InvalidArgumentError);
});

test('doppel array serve: a ready line, the token file, the loopback rule and a clean stop', async () => {
  const dir = tempDir('cli');
  const tokenFile = path.join(dir, 'token');
  writeFileSync(tokenFile, 'cli-token-0123456789abcdef\n');
  const refused = spawnSync(process.execPath, [...doppelArgs, 'array', 'serve', '--dir', path.join(dir, 'a'), '--listen', '0.0.0.0:0'], { cwd: root, encoding: 'utf8' });
  assert.equal(refused.status, 2, refused.stderr);
  assert.match(refused.stderr, /listening on 0\.0\.0\.0 needs --token-file F \(or --insecure/);
  const help = spawnSync(process.execPath, [...doppelArgs, 'array', '--help'], { cwd: root, encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--refuse-snapshots/);
  assert.match(help.stdout, /plain\s+HTTP/);
  const child = spawn(
    process.execPath,
    [...doppelArgs, 'array', 'serve', '--dir', path.join(dir, 'a'), '--listen', '127.0.0.1:0', '--name', 'cli-array', '--token-file', tokenFile, '--refuse-snapshots', '--ready-line'],
    { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const ready = await new Promise<{ ready: boolean; url: string }>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (l) => {
        try {
          const v = JSON.parse(l) as { ready?: boolean; url: string };
          if (v.ready) resolve({ ready: true, url: v.url });
        } catch {
          // not the ready line
        }
      });
      void exited.then((code) => reject(new Error(`array serve exited with ${code}`)));
    });
    assert.match(ready.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    await rejectsWith(new ArrayClient({ url: ready.url }).listVolumes(), UnauthenticatedError);
    const client = new ArrayClient({ url: ready.url, token: 'cli-token-0123456789abcdef' });
    assert.equal((await client.info()).name, 'cli-array');
    await client.createVolume('v', 1);
    await rejectsWith(client.createSnapshot(['v']), FailedPreconditionError, /^array cli-array refuses to snapshot/);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, 'SIGTERM stops it cleanly');
});
