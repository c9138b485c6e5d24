/**
 * One layer of a volume: the blocks written between two snapshots (or since the last one). Its data file
 * is sparse, block b at byte b × blockSize; its map file is the layer's block bitmap, one bit per block
 * that holds data here (shared/src/array/bitmap.ts), kept in memory and written through byte by byte.
 * Files are created at the first write: an empty layer (a fresh snapshot's new top) costs nothing on disk.
 */
import { constants } from 'node:fs';
import { open, readFile, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { DataCorruptionError } from '../../shared/src/mod.js';
import { bitmapByteLength, countBlocks, hasBlock, setBlock } from '../../shared/src/array/mod.js';

function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'ENOENT';
}

export class Layer {
  /** Promises, so that two readers sharing the lock open a file once. */
  private data: Promise<FileHandle> | undefined;
  private map: Promise<FileHandle> | undefined;

  private constructor(
    readonly id: number,
    private readonly dir: string,
    /** null until the first block lands here. */
    private bits: Uint8Array | null,
    readonly blocks: number,
    readonly blockSize: number,
  ) {}

  static empty(dir: string, id: number, blocks: number, blockSize: number): Layer {
    return new Layer(id, dir, null, blocks, blockSize);
  }

  /** Reads the layer's bitmap back after a restart (no map file: an empty layer). */
  static async load(dir: string, id: number, blocks: number, blockSize: number): Promise<Layer> {
    let bits: Uint8Array | null = null;
    try {
      const buf = await readFile(Layer.mapPath(dir, id));
      if (buf.length !== bitmapByteLength(blocks)) {
        throw new DataCorruptionError(`array layer ${id}: map file has ${buf.length} bytes, expected ${bitmapByteLength(blocks)}`);
      }
      bits = new Uint8Array(buf);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return new Layer(id, dir, bits, blocks, blockSize);
  }

  static dataPath(dir: string, id: number): string {
    return path.join(dir, `${id}.data`);
  }

  static mapPath(dir: string, id: number): string {
    return path.join(dir, `${id}.map`);
  }

  has(block: number): boolean {
    return this.bits !== null && hasBlock(this.bits, block);
  }

  /** A copy-free view of the bitmap, or null when nothing was written. */
  bitmap(): Uint8Array | null {
    return this.bits;
  }

  count(): number {
    return this.bits === null ? 0 : countBlocks(this.bits);
  }

  /** Reads `length` bytes at volume byte `pos` (all in blocks this layer has) into `target` at `at`. */
  async read(pos: number, target: Buffer, at: number, length: number): Promise<void> {
    const fh = await this.dataFile();
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(target, at + done, length - done, pos + done);
      // Past the end of a sparse file: the rest reads as zeros (target is zero-filled by the caller).
      if (bytesRead === 0) return;
      done += bytesRead;
    }
  }

  /** Writes `data` at volume byte `pos`; the caller marks the blocks it completed. */
  async write(pos: number, data: Uint8Array): Promise<void> {
    const fh = await this.dataFile();
    let done = 0;
    while (done < data.length) {
      const { bytesWritten } = await fh.write(data, done, data.length - done, pos + done);
      done += bytesWritten;
    }
  }

  /** Sets the bits of `blocks` (their data must be in place) and writes the changed bytes of the map. */
  async mark(blocks: Iterable<number>): Promise<void> {
    if (this.bits === null) this.bits = new Uint8Array(bitmapByteLength(this.blocks));
    let lo = Infinity;
    let hi = -1;
    for (const b of blocks) {
      if (setBlock(this.bits, b)) {
        lo = Math.min(lo, b >> 3);
        hi = Math.max(hi, b >> 3);
      }
    }
    if (hi < 0) return;
    const fh = await this.mapFile();
    await fh.write(this.bits, lo, hi - lo + 1, lo);
  }

  async close(): Promise<void> {
    const files = [this.data, this.map];
    this.data = undefined;
    this.map = undefined;
    for (const f of files) {
      if (f) await f.then((fh) => fh.close()).catch(() => undefined);
    }
  }

  /** Closes and deletes the layer's files. */
  async remove(): Promise<void> {
    await this.close();
    await rm(Layer.dataPath(this.dir, this.id), { force: true });
    await rm(Layer.mapPath(this.dir, this.id), { force: true });
    this.bits = null;
  }

  private dataFile(): Promise<FileHandle> {
    this.data ??= open(Layer.dataPath(this.dir, this.id), constants.O_RDWR | constants.O_CREAT, 0o644).catch((err: unknown) => {
      this.data = undefined;
      throw err;
    });
    return this.data;
  }

  private mapFile(): Promise<FileHandle> {
    this.map ??= (async () => {
      const fh = await open(Layer.mapPath(this.dir, this.id), constants.O_RDWR | constants.O_CREAT, 0o644);
      // A new map file gets its full length at once, so a restart always finds ceil(blocks / 8) bytes.
      const st = await fh.stat();
      if (st.size !== bitmapByteLength(this.blocks)) await fh.truncate(bitmapByteLength(this.blocks));
      return fh;
    })().catch((err: unknown) => {
      this.map = undefined;
      throw err;
    });
    return this.map;
  }
}
