/**
 * A bypass volume as the storage array's snapshot holds it, read through the
 * array's API: the same DiskView the backup reads the hypervisor's disks with.
 */
import type { DiskView } from '../drivers/driver.js';

/** What the agent asks of the storage array's management API (agent/src/array/client.ts). */
export interface ArrayApi {
  readonly url: string;
  createSnapshot(volumes: string[], label?: string, o?: { timeoutMs?: number }): Promise<{ id: string; createdAt: string }>;
  listSnapshots(): Promise<{ id: string; label?: string; volumes: { name: string }[] }[]>;
  deleteSnapshot(id: string): Promise<unknown>;
  readSnapshot(id: string, volume: string, offset: number, length: number): Promise<Buffer>;
  /** One bit per array block that holds data: bit b is bit (b & 7) of byte (b >> 3). */
  allocated(id: string, volume: string): Promise<{ blockSize: number; bitmap: Uint8Array }>;
  /** The blocks that may differ between snapshot `baseId` and snapshot `id`, in the same form. */
  diff(id: string, volume: string, baseId: string): Promise<{ blockSize: number; bitmap: Uint8Array }>;
  /** The volume's data path (a restore writes the volumes back; the consistency check reads a token). */
  write(volume: string, offset: number, data: Buffer): Promise<unknown>;
  read(volume: string, offset: number, length: number): Promise<Buffer>;
}

/** The array's byte bitmap (LSB first) as 32-bit words, bit (b & 31) of word (b >>> 5): the same bits on little-endian. */
export function bitmapWords(bytes: Uint8Array, blocks: number): Uint32Array {
  const words = new Uint32Array(Math.ceil(blocks / 32));
  for (let b = 0; b < blocks; b++) if ((bytes[b >> 3] ?? 0) & (1 << (b & 7))) words[b >>> 5]! |= 1 << (b & 31);
  return words;
}

export class ArraySnapshotView implements DiskView {
  readonly blockCount: number;
  private readonly words: Uint32Array;

  constructor(
    private readonly array: ArrayApi,
    private readonly snapshot: string,
    private readonly volume: string,
    readonly name: string,
    readonly sizeBytes: number,
    readonly blockSize: number,
    allocated: Uint8Array,
  ) {
    this.blockCount = Math.ceil(sizeBytes / blockSize);
    this.words = bitmapWords(allocated, this.blockCount);
  }

  isAllocated(block: number): boolean {
    return ((this.words[block >>> 5] ?? 0) & (1 << (block & 31))) !== 0;
  }

  async read(first: number, count: number, into: Buffer): Promise<void> {
    const offset = first * this.blockSize;
    const length = Math.min(count * this.blockSize, this.sizeBytes - offset);
    const data = await this.array.readSnapshot(this.snapshot, this.volume, offset, length);
    if (data.length !== length) throw new Error(`array snapshot ${this.snapshot} of ${this.volume}: ${data.length} bytes at ${offset}, asked for ${length}`);
    data.copy(into, 0);
  }
}
