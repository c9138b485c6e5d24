import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { PAGE_SIZE, PageBatchDecoder, PageBatchEncoder, DataCorruptionError, InvalidArgumentError } from '../shared/src/mod.js';
import type { PageBatch, PageBatch__Output } from '../shared/src/gen/doppel/v1/PageBatch.js';

function asOutput(b: PageBatch): PageBatch__Output {
  return {
    round: b.round ?? 0,
    zeroPages: [...(b.zeroPages ?? [])],
    dataPages: [...(b.dataPages ?? [])],
    data: Buffer.from(b.data as Buffer),
    compressed: b.compressed ?? false,
    crc32: b.crc32 ?? 0,
  };
}

function textPage(i: number): Buffer {
  return Buffer.from(`page ${i} `.repeat(PAGE_SIZE).slice(0, PAGE_SIZE));
}

test('zero pages travel as indices only; compressible pages are LZ4-compressed; round trip is exact', () => {
  const enc = new PageBatchEncoder();
  enc.add(3, Buffer.alloc(PAGE_SIZE));
  enc.add(7, textPage(7));
  enc.add(9, textPage(9));
  const batch = asOutput(enc.finish(2));
  assert.deepEqual(batch.zeroPages, [3]);
  assert.deepEqual(batch.dataPages, [7, 9]);
  assert.equal(batch.compressed, true);
  assert.ok(batch.data.length < 2 * PAGE_SIZE / 4, `compressed to ${batch.data.length} bytes`);
  const d = new PageBatchDecoder(PAGE_SIZE, 16).decode(batch);
  assert.deepEqual(d.raw.subarray(0, PAGE_SIZE), textPage(7));
  assert.deepEqual(d.raw.subarray(PAGE_SIZE), textPage(9));
});

test('pages LZ4 cannot shrink are sent raw with compressed=false', () => {
  const enc = new PageBatchEncoder();
  const p = randomBytes(PAGE_SIZE);
  enc.add(0, p);
  const batch = asOutput(enc.finish(0));
  assert.equal(batch.compressed, false);
  assert.equal(batch.data.length, PAGE_SIZE);
  assert.deepEqual(new PageBatchDecoder(PAGE_SIZE, 1).decode(batch).raw, p);
});

test('a flipped byte, a wrong index or an oversized batch is rejected with a typed error', () => {
  const enc = new PageBatchEncoder();
  enc.add(1, textPage(1));
  const good = asOutput(enc.finish(0));
  const dec = new PageBatchDecoder(PAGE_SIZE, 4);

  const corrupt = { ...good, data: Buffer.from(good.data) };
  corrupt.data[5] = (corrupt.data[5] ?? 0) ^ 0xff;
  assert.throws(() => dec.decode(corrupt), (e: unknown) => e instanceof DataCorruptionError && /checksum mismatch/.test(e.message));

  assert.throws(() => dec.decode({ ...good, dataPages: [4] }), (e: unknown) => e instanceof InvalidArgumentError && /out of range/.test(e.message));
  assert.throws(
    () => dec.decode({ ...good, zeroPages: Array.from({ length: 70 }, (_, i) => i % 4) }),
    (e: unknown) => e instanceof InvalidArgumentError && /limit is 64/.test(e.message),
  );
  assert.throws(() => dec.decode({ ...good, compressed: false }), InvalidArgumentError);
});

test('the encoder hands each batch its own buffer (frames queued in grpc-js stay intact)', () => {
  const enc = new PageBatchEncoder();
  enc.add(0, textPage(1));
  const first = enc.finish(0);
  const copy = Buffer.from(first.data as Buffer);
  enc.add(0, textPage(2));
  enc.finish(0);
  assert.deepEqual(first.data, copy);
});
