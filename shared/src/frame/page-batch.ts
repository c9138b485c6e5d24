/**
 * LZ4 framing of guest pages for the data plane.
 *
 * A batch holds up to `BATCH_PAGES` pages. All-zero pages travel as indices
 * only. The other pages are concatenated and compressed as one LZ4 block; when
 * LZ4 cannot shrink them (`encodeBlock` returns 0, or no gain) they go raw with
 * `compressed = false`. A CRC-32 over the payload as sent and both index lists
 * lets the receiver reject a corrupt frame before it decompresses anything or
 * touches guest memory (checksumming the wire bytes costs a third of the raw).
 */
import lz4 from 'lz4';
import { crc32 } from 'node:zlib';
import type { PageBatch, PageBatch__Output } from '../gen/doppel/v1/PageBatch.js';
import { DataCorruptionError, InvalidArgumentError } from '../errors.js';

export const PAGE_SIZE = 4096;
/** 64 pages = 256 KiB of raw data per batch: the size at which LZ4 and gRPC are both efficient. */
export const BATCH_PAGES = 64;

/** 16 disk blocks of 64 KiB = 1 MiB of raw data per disk batch. */
export const DISK_BATCH_BLOCKS = 16;

const ZERO = Buffer.alloc(64 * 1024);

/** True when every byte is zero (any length; compared in 64 KiB slices against a zero buffer). */
export function isZeroPage(page: Buffer): boolean {
  if (page.length <= ZERO.length) return page.equals(ZERO.subarray(0, page.length));
  for (let off = 0; off < page.length; off += ZERO.length) {
    const part = page.subarray(off, Math.min(page.length, off + ZERO.length));
    if (!part.equals(ZERO.subarray(0, part.length))) return false;
  }
  return true;
}

function indicesCrc(crc: number, indices: readonly number[]): number {
  if (indices.length === 0) return crc;
  const u32 = Uint32Array.from(indices);
  return crc32(Buffer.from(u32.buffer, u32.byteOffset, u32.byteLength), crc);
}

export function batchCrc(payload: Buffer, zeroPages: readonly number[], dataPages: readonly number[]): number {
  return indicesCrc(indicesCrc(crc32(payload), zeroPages), dataPages);
}

/** Collects pages into batches; each finished batch owns its data. */
export class PageBatchEncoder {
  readonly pageSize: number;
  readonly maxPages: number;
  private raw: Buffer;
  private zero: number[] = [];
  private data: number[] = [];
  /** Bytes handed to `add` (raw page bytes) and produced on the wire by `finish`. */
  bytesRaw = 0;
  bytesWire = 0;

  constructor(opts: { pageSize?: number; maxPages?: number } = {}) {
    this.pageSize = opts.pageSize ?? PAGE_SIZE;
    this.maxPages = opts.maxPages ?? BATCH_PAGES;
    this.raw = Buffer.allocUnsafe(this.pageSize * this.maxPages);
  }

  get size(): number {
    return this.zero.length + this.data.length;
  }

  get full(): boolean {
    return this.size >= this.maxPages;
  }

  /** Adds one page; `page` is copied, so the caller may reuse or change it afterwards. */
  add(index: number, page: Buffer): void {
    this.bytesRaw += this.pageSize;
    if (isZeroPage(page)) {
      this.zero.push(index);
      return;
    }
    page.copy(this.raw, this.data.length * this.pageSize);
    this.data.push(index);
  }

  /** Ends the current batch. The batch owns its buffer: grpc-js may serialise a queued message after write() returns. */
  finish(round: number): PageBatch {
    const rawLen = this.data.length * this.pageSize;
    const raw = this.raw.subarray(0, rawLen);
    let data = raw;
    let compressed = false;
    if (rawLen > 0) {
      const out = Buffer.allocUnsafe(lz4.encodeBound(rawLen));
      const n = lz4.encodeBlock(raw, out);
      if (n > 0 && n < rawLen) {
        data = out.subarray(0, n);
        compressed = true;
      } else {
        // The raw buffer goes out with the frame; take a fresh one for the next batch.
        this.raw = Buffer.allocUnsafe(this.pageSize * this.maxPages);
      }
    }
    const crc = batchCrc(data, this.zero, this.data);
    const batch: PageBatch = { round, zeroPages: this.zero, dataPages: this.data, data, compressed, crc32: crc };
    this.bytesWire += data.length + 4 * (this.zero.length + this.data.length) + 16;
    this.zero = [];
    this.data = [];
    return batch;
  }
}

export interface DecodedBatch {
  zeroPages: readonly number[];
  dataPages: readonly number[];
  /** Raw page data, `dataPages.length * pageSize` bytes; valid until the next decode. */
  raw: Buffer;
}

/** Validates and decompresses batches. Any inconsistency is a typed error naming what was wrong. */
export class PageBatchDecoder {
  private readonly scratch: Buffer;

  constructor(
    readonly pageSize: number,
    readonly pageCount: number,
    readonly maxPages: number = BATCH_PAGES,
  ) {
    this.scratch = Buffer.allocUnsafe(pageSize * maxPages);
  }

  decode(batch: PageBatch__Output): DecodedBatch {
    const { zeroPages, dataPages, data } = batch;
    const n = zeroPages.length + dataPages.length;
    if (n === 0) throw new InvalidArgumentError('page batch holds no pages');
    if (n > this.maxPages) {
      throw new InvalidArgumentError(`page batch holds ${n} pages; the limit is ${this.maxPages}`);
    }
    for (const list of [zeroPages, dataPages]) {
      for (const i of list) {
        if (!Number.isInteger(i) || i < 0 || i >= this.pageCount) {
          throw new InvalidArgumentError(`page index ${i} is out of range (the VM has ${this.pageCount} pages)`);
        }
      }
    }
    const crc = batchCrc(data, zeroPages, dataPages);
    if (crc !== batch.crc32) {
      throw new DataCorruptionError(
        `page batch of round ${batch.round}: checksum mismatch (got ${crc.toString(16)}, frame says ${batch.crc32.toString(16)})`,
      );
    }
    const rawLen = dataPages.length * this.pageSize;
    let raw: Buffer;
    if (batch.compressed) {
      const target = this.scratch.subarray(0, rawLen);
      let got: number;
      try {
        got = lz4.decodeBlock(data, target);
      } catch (err) {
        throw new DataCorruptionError(`page batch of round ${batch.round}: LZ4 block does not decode`, { cause: err });
      }
      if (got !== rawLen) {
        throw new DataCorruptionError(
          `page batch of round ${batch.round}: LZ4 block decodes to ${got} bytes, expected ${rawLen}`,
        );
      }
      raw = target;
    } else {
      if (data.length !== rawLen) {
        throw new InvalidArgumentError(
          `page batch of round ${batch.round}: ${data.length} raw bytes for ${dataPages.length} pages (expected ${rawLen})`,
        );
      }
      raw = data;
    }
    return { zeroPages, dataPages, raw };
  }
}

/** CRC-32 over machine state (vCPU then devices). */
export function stateCrc(vcpu: Buffer, devices: Buffer): number {
  return crc32(devices, crc32(vcpu));
}
