/**
 * The backup repository against a real gRPC server on 127.0.0.1 and real
 * directories: round trips by content hash, zero chunks, deduplication,
 * incrementals, corrupt and mismatching chunks, interrupted uploads, a full
 * disk (a small tmpfs) and bad requests.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Server, ServerCredentials, credentials, type ServerWritableStream, type ServiceError } from '@grpc/grpc-js';
import {
  AlreadyExistsError,
  ContentHasher,
  DataCorruptionError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  RepositoryClient,
  ResourceExhaustedError,
  changedChunksFromBlocks,
  chunkCount,
  contentHashOf,
  loadRepositoryProto,
  restoreDisk,
  silentLogger,
  uploadDisk,
  zeroChunkDigest,
  zeroFill,
  isAllZero,
  type ChunkSource,
  type RepoDiskIndex,
} from '../shared/src/mod.js';
import { addRepositoryService, repositoryHandlers, Repository, startRepositoryServer, type RepositoryServer } from '../repository/src/mod.js';
import type { Chunk } from '../shared/src/gen/doppel/v1/Chunk.js';
import type { ReadChunksRequest__Output } from '../shared/src/gen/doppel/v1/ReadChunksRequest.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const log = silentLogger();
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function tempDir(label: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `doppel-repo-${label}-`));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startRepo(label: string, chunkSize?: number, dir = tempDir(label)): Promise<{ srv: RepositoryServer; client: RepositoryClient; dir: string }> {
  const srv = await startRepositoryServer({ dir, listen: '127.0.0.1:0', log, ...(chunkSize ? { chunkSize } : {}) });
  const client = new RepositoryClient(srv.addr);
  cleanups.push(async () => {
    client.close();
    await srv.stop(500);
  });
  return { srv, client, dir };
}

/** An in-memory disk; `holes` are chunks reported as never allocated; every read is recorded. */
function memDisk(name: string, data: Buffer, chunkSize: number, holes: ReadonlySet<number> = new Set()): ChunkSource & { reads: number[] } {
  const reads: number[] = [];
  return {
    name,
    sizeBytes: data.length,
    chunkSize,
    reads,
    readChunk(i, into) {
      reads.push(i);
      if (holes.has(i)) return Promise.resolve('hole');
      data.copy(into, 0, i * chunkSize, i * chunkSize + into.length);
      return Promise.resolve('data');
    },
  };
}

/** A disk image with random, compressible text and zero chunks (and a short last chunk). */
function mixedImage(chunks: number, chunkSize: number, tail = 0): Buffer {
  const buf = Buffer.alloc(chunks * chunkSize + tail);
  for (let i = 0; i < chunks; i++) {
    const at = i * chunkSize;
    if (i % 4 === 0) randomBytes(chunkSize).copy(buf, at);
    else if (i % 4 === 1) buf.write(`chunk ${i} compressible text `.repeat(chunkSize / 16), at, chunkSize, 'latin1');
    // i % 4 === 2 and 3 stay zero
  }
  if (tail) randomBytes(tail).copy(buf, chunks * chunkSize);
  return buf;
}

/** The content hash computed independently, straight from the bytes. */
function hashOfBytes(data: Buffer, chunkSize: number): string {
  const h = new ContentHasher(data.length, chunkSize);
  for (let off = 0; off < data.length; off += chunkSize) h.addData(data.subarray(off, Math.min(data.length, off + chunkSize)));
  return h.digest();
}

async function restoreToBuffer(client: RepositoryClient, index: RepoDiskIndex, expect?: string): Promise<{ data: Buffer; hash: string; fetched: number }> {
  const target = Buffer.alloc(index.sizeBytes);
  const r = await restoreDisk(
    client,
    index,
    (i, data) => {
      data.copy(target, i * index.chunkSize);
      return Promise.resolve();
    },
    expect ? { expectContentHash: expect } : {},
  );
  return { data: target, hash: r.contentHash, fetched: r.chunksFetched };
}

function chunkFiles(dir: string): string[] {
  const root = path.join(dir, 'chunks');
  return readdirSync(root).flatMap((p) => readdirSync(path.join(root, p)).map((f) => path.join(root, p, f)));
}

test('upload, commit and restore round trip: equal by content hash and byte for byte', async () => {
  const cs = 256 * KiB;
  const { client } = await startRepo('roundtrip', cs);
  const data = mixedImage(40, cs, 12_345);
  const disk = memDisk('disk0', data, cs, new Set([3]));
  const up = await uploadDisk(client, disk);
  assert.equal(up.stats.chunksTotal, 41);
  assert.equal(up.stats.chunksZero, 20, 'chunks 2, 3, 6, 7, ... are zero (3 as a hole)');
  assert.equal(up.stats.chunksNew, 21);
  assert.equal(up.stats.contentHash, hashOfBytes(data, cs));
  const m = await client.commit('b-roundtrip', [up.index], JSON.stringify({ vm: 'vm1' }));
  assert.equal(m.disks[0]!.contentHash, up.stats.contentHash);
  assert.equal(m.disks[0]!.zeroChunks, 20);
  assert.deepEqual(await client.manifest('b-roundtrip'), m);
  const index = await client.index('b-roundtrip', 'disk0');
  assert.equal(contentHashOf(index.digests, index.sizeBytes, index.chunkSize), m.disks[0]!.contentHash);
  const r = await restoreToBuffer(client, index, m.disks[0]!.contentHash);
  assert.equal(r.hash, m.disks[0]!.contentHash);
  assert.ok(r.data.equals(data), 'restored bytes equal the original');
  const v = await client.verify('b-roundtrip');
  assert.deepEqual(v, { chunksChecked: 21, chunksTotal: 21, bad: [] });
  const list = await client.list();
  assert.deepEqual(list.map((b) => [b.backupId, b.metadataJson]), [['b-roundtrip', '']]);
  assert.equal((await client.list({ withMetadata: true }))[0]!.metadataJson, '{"vm":"vm1"}');
});

test('all-zero chunks are never stored; a zero chunk hashes as its zero bytes', async () => {
  const cs = 256 * KiB;
  const { client, dir } = await startRepo('zero', cs);
  const data = Buffer.alloc(16 * cs + 100);
  data.fill(7, 5 * cs, 6 * cs);
  const holes = new Set([0, 1, 2, 3, 4, 8, 9, 10]);
  const up = await uploadDisk(client, memDisk('disk0', data, cs, holes));
  assert.equal(up.stats.chunksZero, 16);
  assert.equal(up.stats.chunksNew, 1);
  assert.equal(up.stats.bytesRead, data.length - holes.size * cs, 'holes are not read');
  await client.commit('b-zero', [up.index]);
  assert.equal(chunkFiles(dir).length, 1, 'only the one non-zero chunk is on disk');
  assert.equal(up.stats.contentHash, hashOfBytes(data, cs));
  const expectFirst = createHash('sha256').update(zeroChunkDigest(cs)).update(zeroChunkDigest(cs)).digest('hex');
  assert.equal(contentHashOf([Buffer.alloc(0), Buffer.alloc(0)], 2 * cs, cs), expectFirst);
  const r = await restoreToBuffer(client, up.index);
  assert.equal(r.fetched, 1);
  assert.ok(r.data.equals(data));
  const shared = Buffer.from(new SharedArrayBuffer(3 * MiB)).fill(9);
  zeroFill(shared, 100, 2 * MiB + 5);
  assert.ok(isAllZero(shared.subarray(100, 2 * MiB + 5)) && shared[99] === 9 && shared[2 * MiB + 5] === 9);
});

test('dedup: the same disk again stores nothing new; two VMs from one image share their chunks', async () => {
  const cs = 256 * KiB;
  const { client, dir } = await startRepo('dedup', cs);
  const image = mixedImage(32, cs);
  const first = await uploadDisk(client, memDisk('disk0', image, cs));
  await client.commit('vm-a-1', [first.index]);
  const filesAfterFirst = chunkFiles(dir).length;

  const again = await uploadDisk(client, memDisk('disk0', image, cs));
  assert.equal(again.stats.chunksNew, 0);
  assert.equal(again.stats.bytesStored, 0);
  assert.equal(again.stats.chunksReused, first.stats.chunksNew);
  await client.commit('vm-a-2', [again.index]);
  assert.equal(chunkFiles(dir).length, filesAfterFirst);

  // VM b: the same image with two chunks of its own.
  const b = Buffer.from(image);
  randomBytes(cs).copy(b, 4 * cs);
  randomBytes(cs).copy(b, 9 * cs);
  const vmB = await uploadDisk(client, memDisk('disk0', b, cs));
  assert.equal(vmB.stats.chunksNew, 2);
  await client.commit('vm-b-1', [vmB.index]);
  assert.equal(chunkFiles(dir).length, filesAfterFirst + 2);
  assert.ok((await restoreToBuffer(client, vmB.index)).data.equals(b));
});

test('incremental: only the changed chunks are read and sent; the result restores exactly', async () => {
  const cs = 64 * KiB;
  const { client } = await startRepo('incr', cs);
  const n = 200;
  const v1 = randomBytes(n * cs);
  const full = await uploadDisk(client, memDisk('disk0', v1, cs));
  await client.commit('inc-1', [full.index]);

  const v2 = Buffer.from(v1);
  const changed = new Set([7, 150, 199]); // 1.5 %, the last chunk among them
  for (const c of changed) randomBytes(1000).copy(v2, c * cs + 10);
  const src = memDisk('disk0', v2, cs);
  const base = await client.index('inc-1', 'disk0');
  const inc = await uploadDisk(client, src, { base, changed });
  assert.deepEqual(src.reads.sort((a, b) => a - b), [...changed]);
  assert.equal(inc.stats.bytesRead, changed.size * cs);
  assert.equal(inc.stats.chunksNew, changed.size);
  assert.equal(inc.stats.chunksReused, n - changed.size);
  assert.ok(inc.stats.bytesStored <= changed.size * cs);
  assert.equal(inc.stats.contentHash, hashOfBytes(v2, cs));
  const m = await client.commit('inc-2', [inc.index]);
  const r = await restoreToBuffer(client, await client.index('inc-2', 'disk0'), m.disks[0]!.contentHash);
  assert.ok(r.data.equals(v2));

  // The drivers' block bitmaps map onto chunks: blocks of 16 KiB, 4 per chunk.
  const bitmap = new Uint32Array(Math.ceil((n * 4) / 32));
  for (const block of [29, 600]) bitmap[block >>> 5]! |= 1 << (block & 31);
  const fromBlocks = changedChunksFromBlocks(bitmap, 16 * KiB, cs, n * cs);
  assert.deepEqual([0, 7, 150, 151].map((c) => fromBlocks.has(c)), [false, true, true, false]);
  assert.equal(fromBlocks.count(), 2);
});

test('PutChunks rejects a chunk whose content does not match its digest, naming it', async () => {
  const { client, dir } = await startRepo('mismatch', 64 * KiB);
  const raw = randomBytes(64 * KiB);
  const lying = createHash('sha256').update('something else').digest();
  const w = client.putChunks();
  await w.write({ digest: lying, rawLength: raw.length, compressed: false, data: raw });
  await assert.rejects(w.end(), (e: unknown) => e instanceof DataCorruptionError && e.message.includes(lying.toString('hex')));
  assert.equal(chunkFiles(dir).length, 0);

  const text = Buffer.from('abcd'.repeat(16 * KiB));
  const d = createHash('sha256').update(text).digest();
  const w2 = client.putChunks();
  await w2.write({ digest: d, rawLength: text.length, compressed: true, data: randomBytes(100) });
  await assert.rejects(w2.end(), (e: unknown) => e instanceof DataCorruptionError && e.message.includes(d.toString('hex')));

  const zeros = Buffer.alloc(64 * KiB);
  const w3 = client.putChunks();
  await w3.write({ digest: createHash('sha256').update(zeros).digest(), rawLength: zeros.length, compressed: false, data: zeros });
  await assert.rejects(w3.end(), (e: unknown) => e instanceof InvalidArgumentError && /all zeros/.test(e.message));

  const big = randomBytes(128 * KiB);
  const w4 = client.putChunks();
  await w4.write({ digest: createHash('sha256').update(big).digest(), rawLength: big.length, compressed: false, data: big });
  await assert.rejects(w4.end(), (e: unknown) => e instanceof InvalidArgumentError && /raw length/.test(e.message));
  assert.equal(chunkFiles(dir).length, 0);
});

test('a corrupted chunk file is named by verify, and restore refuses it', async () => {
  const cs = 64 * KiB;
  const { client, dir } = await startRepo('corrupt', cs);
  const data = randomBytes(8 * cs);
  const up = await uploadDisk(client, memDisk('disk0', data, cs));
  await client.commit('b-corrupt', [up.index]);
  const victim = up.index.digests[5]!;
  const file = path.join(dir, 'chunks', victim.toString('hex').slice(0, 4), victim.toString('hex'));
  const bytes = readFileSync(file);
  bytes[bytes.length - 10]! ^= 0xff;
  writeFileSync(file, bytes);

  const v = await client.verify('b-corrupt');
  assert.equal(v.chunksChecked, 8);
  assert.equal(v.bad.length, 1);
  assert.equal(v.bad[0]!.digestHex, victim.toString('hex'));
  assert.equal(v.bad[0]!.disk, 'disk0');
  assert.equal(v.bad[0]!.offset, 5 * cs);
  assert.match(v.bad[0]!.reason, /hashes to/);

  const written: number[] = [];
  await assert.rejects(
    restoreDisk(client, up.index, (i) => {
      written.push(i);
      return Promise.resolve();
    }),
    (e: unknown) => e instanceof DataCorruptionError && e.message.includes(victim.toString('hex')),
  );
  assert.ok(!written.includes(5), 'the bad chunk was never handed to the writer');

  // A missing chunk file is named too.
  rmSync(path.join(dir, 'chunks', up.index.digests[2]!.toString('hex').slice(0, 4), up.index.digests[2]!.toString('hex')));
  const v2 = await client.verify('b-corrupt');
  assert.deepEqual(v2.bad.map((b) => [b.digestHex, b.reason]).sort(), [
    [up.index.digests[2]!.toString('hex'), 'missing'],
    [victim.toString('hex'), v.bad[0]!.reason],
  ].sort());
});

test('the client re-verifies every chunk it reads, even from a server that lies', async () => {
  const cs = 64 * KiB;
  const { client, srv } = await startRepo('liar', cs);
  const data = randomBytes(4 * cs);
  const up = await uploadDisk(client, memDisk('disk0', data, cs));
  await client.commit('b-liar', [up.index]);
  // A second server over the same store whose ReadChunks flips a byte after the store verified it.
  const honest = repositoryHandlers({ repo: srv.repo, log });
  const liar = new Server();
  liar.addService(loadRepositoryProto().doppel.v1.Repository.service, {
    ...honest,
    ReadChunks: (call: ServerWritableStream<ReadChunksRequest__Output, Chunk>) => {
      void (async () => {
        for (const d of call.request.digests) {
          const c = await srv.repo.readChunk(d);
          const tampered = Buffer.from(c.data);
          tampered[0]! ^= 1;
          call.write({ digest: c.digest, rawLength: c.rawLength, compressed: c.compressed, data: tampered });
        }
        call.end();
      })();
    },
  });
  const port = await new Promise<number>((resolve, reject) => liar.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const liarClient = new RepositoryClient(`127.0.0.1:${port}`);
  cleanups.push(() => {
    liarClient.close();
    liar.forceShutdown();
  });
  await assert.rejects(
    liarClient.readChunks(up.index.digests, () => assert.fail('no chunk may pass')),
    (e: unknown) => e instanceof DataCorruptionError && e.message.includes(up.index.digests[0]!.toString('hex')),
  );
});

test('restores abandoned mid-stream do not starve the server of read buffers', async () => {
  // Enough data that the server is still sending (held by flow control) when the client gives up.
  const cs = 1 * MiB;
  const { client } = await startRepo('abandon', cs);
  const data = randomBytes(48 * cs);
  const up = await uploadDisk(client, memDisk('disk0', data, cs));
  for (let round = 0; round < 20; round++) {
    await assert.rejects(
      restoreDisk(client, up.index, () => Promise.reject(new Error('target disk failed'))),
      /target disk failed/,
    );
  }
  const r = await restoreToBuffer(client, up.index);
  assert.ok(r.data.equals(data));
  assert.deepEqual((await client.verify('none-yet').catch((e: unknown) => e)) instanceof NotFoundError, true);
});

test('an interrupted upload leaves no backup, and a retry reuses the chunks it stored', async () => {
  const cs = 64 * KiB;
  const { client, dir } = await startRepo('interrupt', cs);
  const data = randomBytes(40 * cs);
  const failing = memDisk('disk0', data, cs);
  const read = failing.readChunk;
  failing.readChunk = (i, into) => (i === 25 ? Promise.reject(new Error('disk read error at chunk 25')) : read(i, into));
  await assert.rejects(uploadDisk(client, failing), /disk read error at chunk 25/);
  await assert.rejects(client.manifest('b-retry'), NotFoundError);
  assert.deepEqual(await client.list(), []);
  const stored = chunkFiles(dir).length;
  assert.ok(stored > 0 && stored <= 25, `${stored} chunks stored before the failure`);

  const retry = await uploadDisk(client, memDisk('disk0', data, cs));
  assert.equal(retry.stats.chunksReused, stored);
  assert.equal(retry.stats.chunksNew, 40 - stored);
  await client.commit('b-retry', [retry.index]);
  assert.equal(chunkFiles(dir).length, 40);
  assert.deepEqual(readdirSync(path.join(dir, 'tmp')), []);
});

test('a full repository disk: ResourceExhaustedError naming the directory, nothing partial left', async (t) => {
  const dir = tempDir('full');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', dir]);
  } catch (err) {
    t.skip(`cannot mount a tmpfs here: ${(err as Error).message}`);
    return;
  }
  try {
    const { client, srv } = await startRepo('full-srv', undefined, dir);
    const data = randomBytes(64 * MiB);
    const up = uploadDisk(client, memDisk('disk0', data, 4 * MiB));
    await assert.rejects(up, (e: unknown) => e instanceof ResourceExhaustedError && e.message.includes(`repository disk full at ${dir}`));
    assert.deepEqual(readdirSync(path.join(dir, 'tmp')), [], 'no temp files left');
    assert.deepEqual(readdirSync(path.join(dir, 'backups')), [], 'no backup visible');
    // Every chunk file that exists is complete and verifies.
    for (const f of chunkFiles(dir)) {
      const digest = Buffer.from(path.basename(f), 'hex');
      await srv.repo.readChunk(digest);
    }
    // A commit that cannot be written is refused the same way, and leaves nothing.
    const filler = path.join(dir, 'filler');
    try {
      writeFileSync(filler, Buffer.alloc(8 * MiB));
    } catch {
      // the tmpfs is now full to the last page
    }
    const idx: RepoDiskIndex = { disk: 'disk0', sizeBytes: 64 * MiB, chunkSize: 4 * MiB, digests: Array.from({ length: 16 }, () => Buffer.alloc(0)) };
    await assert.rejects(client.commit('b-full', [idx]), (e: unknown) => e instanceof ResourceExhaustedError && e.message.includes(dir));
    assert.deepEqual(readdirSync(path.join(dir, 'tmp')), []);
    assert.deepEqual(readdirSync(path.join(dir, 'backups')), []);
    await srv.stop(500);
  } finally {
    execFileSync('umount', ['-l', dir]);
  }
});

test('bad requests get clear errors and the server keeps serving', async () => {
  const cs = 64 * KiB;
  const { client, srv, dir } = await startRepo('bad', cs);
  await assert.rejects(client.manifest('no-such-backup'), (e: unknown) => e instanceof NotFoundError && /no-such-backup/.test(e.message));
  await assert.rejects(client.verify('no-such-backup'), NotFoundError);
  await assert.rejects(client.manifest('../etc'), InvalidArgumentError);
  await assert.rejects(client.missingChunks([randomBytes(33)]), (e: unknown) => e instanceof InvalidArgumentError && /33 bytes/.test(e.message));
  await assert.rejects(client.readChunks([randomBytes(31)], () => undefined), InvalidArgumentError);
  await assert.rejects(
    client.readChunks([randomBytes(32)], () => undefined),
    (e: unknown) => e instanceof NotFoundError && /is not in the repository/.test(e.message),
  );

  // Limits as the raw service sees them (the client splits long lists itself).
  const raw = new (loadRepositoryProto().doppel.v1.Repository)(srv.addr, credentials.createInsecure());
  cleanups.push(() => raw.close());
  const tooMany = Array.from({ length: 4097 }, () => randomBytes(32));
  const err = await new Promise<ServiceError | null>((resolve) => raw.missingChunks({ digests: tooMany }, (e) => resolve(e)));
  assert.match(err?.details ?? '', /at most 4096 digests/);
  assert.equal((await client.missingChunks(tooMany)).length, 4097, 'the client batches a long list');
  const readErr = await new Promise<string>((resolve) => {
    const call = raw.readChunks({ digests: Array.from({ length: 257 }, () => randomBytes(32)) });
    call.on('data', () => undefined);
    call.on('error', (e: ServiceError) => resolve(e.details));
  });
  assert.match(readErr, /at most 256 digests/);

  // Commits: unknown chunks, bad shapes, duplicates.
  const data = randomBytes(3 * cs);
  const ghost = createHash('sha256').update('never uploaded').digest();
  const index: RepoDiskIndex = { disk: 'disk0', sizeBytes: data.length, chunkSize: cs, digests: [Buffer.alloc(0), ghost, Buffer.alloc(0)] };
  await assert.rejects(
    client.commit('b-bad', [index]),
    (e: unknown) => e instanceof FailedPreconditionError && e.message.includes(ghost.toString('hex')),
  );
  await assert.rejects(client.commit('b-bad', [{ ...index, digests: [Buffer.alloc(0)] }]), (e: unknown) => e instanceof InvalidArgumentError && /1 digests for 3 chunks/.test(e.message));
  await assert.rejects(client.commit('b-bad', [{ ...index, chunkSize: 128 * KiB, digests: [Buffer.alloc(0)] }]), /chunk size/);
  await assert.rejects(client.commit('b bad', [index]), InvalidArgumentError);
  await assert.rejects(client.commit('b-bad', [index, index]), /used twice/);
  await assert.rejects(client.commit('b-bad', []), InvalidArgumentError);
  await assert.rejects(uploadDisk(client, memDisk('disk0', data, 2 * cs)), (e: unknown) => e instanceof InvalidArgumentError && /uses 65536-byte chunks/.test(e.message));
  const up = await uploadDisk(client, memDisk('disk0', data, cs));
  await assert.rejects(client.commit('b-bad', [up.index], '{not json'), /not JSON/);
  await client.commit('b-ok', [up.index], '{}');
  await assert.rejects(client.commit('b-ok', [up.index]), AlreadyExistsError);
  await assert.rejects(client.index('b-ok', 'disk9'), (e: unknown) => e instanceof NotFoundError && /no disk 'disk9'/.test(e.message));
  assert.equal((await client.list()).length, 1);
  assert.ok(!existsSync(path.join(dir, 'backups', 'b-bad')));
  assert.deepEqual(readdirSync(path.join(dir, 'tmp')), []);
});

test('a repository keeps its chunk size across restarts and refuses another', async () => {
  const dir = tempDir('reopen');
  const r1 = await Repository.open({ dir, log, chunkSize: 128 * KiB });
  assert.equal(r1.chunkSize, 128 * KiB);
  const r2 = await Repository.open({ dir, log });
  assert.equal(r2.chunkSize, 128 * KiB);
  await assert.rejects(Repository.open({ dir, log, chunkSize: 4 * MiB }), FailedPreconditionError);
  mkdirSync(path.join(dir, 'backups', 'half-written'));
  assert.deepEqual(await r2.list(), [], 'a backup directory without a manifest is not a backup');
  // The service can also be mounted on a server someone else owns (the coordinator's).
  const s = new Server();
  addRepositoryService(s, { repo: r2, log });
  s.forceShutdown();
  assert.equal(chunkCount(10 * 128 * KiB + 1, 128 * KiB), 11);
});
