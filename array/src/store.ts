/**
 * The storage array's volumes and snapshots on a directory, redirect-on-write at 64 KiB blocks.
 *
 * A volume is a chain of layers (layer.ts), oldest first; writes go to the last one. A snapshot freezes
 * the last layer of each volume it covers and puts a new empty layer on top: no data moves, so it is O(1)
 * in the volume's size, and later writes land in newer layers and never change it. A snapshot's view of
 * a volume is the chain up to the layer it froze; a read takes each block from the newest layer of the
 * view that has it (none: zeros). Blocks written between snapshots A and B are the union of the layers
 * after A's up to B's: that is the diff. Deleting a snapshot folds its layer into the next one (blocks the
 * next one lacks are copied up), which keeps every other view, and every diff between the snapshots
 * that remain, as it was.
 *
 * Writes, snapshots and deletions hold the lock alone (rw-lock.ts); reads share it. A snapshot of several
 * volumes is therefore one step: every write before it is whole in it, none after it is in it.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  UnavailableError,
  newId,
  type Logger,
} from '../../shared/src/mod.js';
import {
  ARRAY_BLOCK_SIZE,
  ARRAY_IO_ALIGN,
  ARRAY_MAX_GROUP,
  ARRAY_MAX_IO_BYTES,
  ARRAY_MAX_VOLUME_MIB,
  bitmapByteLength,
  blockRuns,
  orInto,
  requireAligned,
  type ArrayInfo,
  type ArraySnapshot,
  type ArrayVolume,
} from '../../shared/src/array/mod.js';
import { Layer } from './layer.js';
import { RwLock } from './rw-lock.js';
import { STATE_FORMAT, loadState, saveState, type ArrayState } from './state.js';

const MiB = 1024 * 1024;
export const MAX_VOLUMES = 1024;
export const MAX_SNAPSHOTS = 4096;
/** Blocks copied per read/write when a deleted snapshot's layer is folded into the next one. */
const MERGE_RUN_BLOCKS = 16;

interface Volume {
  name: string;
  sizeBytes: number;
  createdAt: string;
  layers: Layer[];
}

interface Snapshot {
  id: string;
  seq: number;
  createdAt: string;
  label?: string;
  volumes: { name: string; sizeBytes: number; layer: Layer }[];
}

/** A block bitmap with its geometry (the bit order is in shared/src/array/bitmap.ts). */
export interface BlockBitmap {
  blockSize: number;
  blocks: number;
  bitmap: Uint8Array;
}

export interface ArrayWrite {
  volume: string;
  offset: number;
  data: Uint8Array;
}

export interface ArrayStoreOptions {
  dir: string;
  /** Shown in messages and GET /v1/array; default: the stored name, or 'array'. */
  name?: string;
  log: Logger;
}

function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export class ArrayStore {
  private readonly lock = new RwLock();
  private readonly volumes = new Map<string, Volume>();
  private readonly snapshots = new Map<string, Snapshot>();
  private nextLayer = 1;
  private nextSeq = 1;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly name: string,
    private readonly log: Logger,
  ) {}

  private get layersDir(): string {
    return path.join(this.dir, 'layers');
  }

  /** Opens the array in `dir`, creating it when empty; removes files a crash left behind. */
  static async open(opts: ArrayStoreOptions): Promise<ArrayStore> {
    const dir = path.resolve(opts.dir);
    await mkdir(path.join(dir, 'layers'), { recursive: true });
    await rm(path.join(dir, 'tmp'), { recursive: true, force: true });
    await mkdir(path.join(dir, 'tmp'), { recursive: true });
    const state = await loadState(dir);
    const store = new ArrayStore(dir, opts.name ?? state?.name ?? 'array', opts.log);
    if (state) await store.restore(state);
    else await saveState(dir, store.state());
    await store.removeOrphans();
    return store;
  }

  private async restore(state: ArrayState): Promise<void> {
    if (state.blockSize !== ARRAY_BLOCK_SIZE) {
      throw new FailedPreconditionError(`storage array at ${this.dir} uses ${state.blockSize}-byte blocks, not ${ARRAY_BLOCK_SIZE}`);
    }
    this.nextLayer = state.nextLayer;
    this.nextSeq = state.nextSeq;
    const byId = new Map<number, Layer>();
    for (const v of state.volumes) {
      const blocks = v.sizeBytes / ARRAY_BLOCK_SIZE;
      const layers: Layer[] = [];
      for (const id of v.layers) {
        const layer = await Layer.load(this.layersDir, id, blocks, ARRAY_BLOCK_SIZE);
        byId.set(id, layer);
        layers.push(layer);
      }
      this.volumes.set(v.name, { name: v.name, sizeBytes: v.sizeBytes, createdAt: v.createdAt, layers });
    }
    for (const s of state.snapshots) {
      const volumes = s.volumes.map((sv) => {
        const layer = byId.get(sv.layer);
        if (!layer) throw new FailedPreconditionError(`storage array at ${this.dir}: snapshot ${s.id} names layer ${sv.layer} of volume ${sv.name}, which no volume has`);
        return { name: sv.name, sizeBytes: sv.sizeBytes, layer };
      });
      this.snapshots.set(s.id, { id: s.id, seq: s.seq, createdAt: s.createdAt, ...(s.label !== undefined ? { label: s.label } : {}), volumes });
    }
  }

  /** Layer files no volume lists: left by a crash between a metadata change and the files' removal. */
  private async removeOrphans(): Promise<void> {
    const live = new Set<string>();
    for (const v of this.volumes.values()) for (const l of v.layers) live.add(String(l.id));
    for (const f of await readdir(this.layersDir)) {
      const id = f.replace(/\.(data|map)$/, '');
      if (live.has(id)) continue;
      await rm(path.join(this.layersDir, f), { force: true });
      this.log.info({ file: f }, 'removed an orphan layer file');
    }
  }

  private state(): ArrayState {
    return {
      format: STATE_FORMAT,
      name: this.name,
      blockSize: ARRAY_BLOCK_SIZE,
      nextLayer: this.nextLayer,
      nextSeq: this.nextSeq,
      volumes: [...this.volumes.values()].map((v) => ({ name: v.name, sizeBytes: v.sizeBytes, createdAt: v.createdAt, layers: v.layers.map((l) => l.id) })),
      snapshots: [...this.snapshots.values()].map((s) => ({
        id: s.id,
        seq: s.seq,
        createdAt: s.createdAt,
        ...(s.label !== undefined ? { label: s.label } : {}),
        volumes: s.volumes.map((sv) => ({ name: sv.name, sizeBytes: sv.sizeBytes, layer: sv.layer.id })),
      })),
    };
  }

  private async persist(): Promise<void> {
    try {
      await saveState(this.dir, this.state());
    } catch (err) {
      throw this.ioError(err, 'state.json');
    }
  }

  private ioError(err: unknown, what: string): unknown {
    if (isDiskFull(err)) return new ResourceExhaustedError(`storage array ${this.name}: disk full at ${this.dir}, could not write ${what}`, { cause: err });
    return err;
  }

  private newLayer(blocks: number): Layer {
    return Layer.empty(this.layersDir, this.nextLayer++, blocks, ARRAY_BLOCK_SIZE);
  }

  private checkOpen(): void {
    if (this.closed) throw new UnavailableError(`storage array ${this.name} is shutting down`);
  }

  private shared<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.lock.shared(async () => {
      this.checkOpen();
      return fn();
    });
  }

  private exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    return this.lock.exclusive(async () => {
      this.checkOpen();
      return fn();
    });
  }

  // --- lookups ---------------------------------------------------------------------------------

  private volume(name: string): Volume {
    const v = this.volumes.get(name);
    if (!v) throw new NotFoundError(`storage array ${this.name} has no volume '${name}'`);
    return v;
  }

  private snapshot(id: string): Snapshot {
    const s = this.snapshots.get(id);
    if (!s) throw new NotFoundError(`storage array ${this.name} has no snapshot ${id}`);
    return s;
  }

  /** The snapshot's view of `volume`: the chain up to the layer it froze. */
  private view(s: Snapshot, volume: string): { v: Volume; chain: Layer[] } {
    const sv = s.volumes.find((x) => x.name === volume);
    if (!sv) throw new NotFoundError(`snapshot ${s.id} does not cover volume '${volume}' (it covers ${s.volumes.map((x) => x.name).join(', ')})`);
    const v = this.volume(volume);
    const i = v.layers.indexOf(sv.layer);
    if (i < 0) throw new FailedPreconditionError(`snapshot ${s.id}: its layer of volume '${volume}' is gone`);
    return { v, chain: v.layers.slice(0, i + 1) };
  }

  private volumeJson(v: Volume): ArrayVolume {
    const snaps = [...this.snapshots.values()].filter((s) => s.volumes.some((sv) => sv.name === v.name)).map((s) => s.id);
    return { name: v.name, sizeBytes: v.sizeBytes, blockSize: ARRAY_BLOCK_SIZE, createdAt: v.createdAt, snapshots: snaps };
  }

  private static snapshotJson(s: Snapshot): ArraySnapshot {
    return {
      id: s.id,
      createdAt: s.createdAt,
      ...(s.label !== undefined ? { label: s.label } : {}),
      volumes: s.volumes.map((sv) => ({ name: sv.name, sizeBytes: sv.sizeBytes })),
    };
  }

  private static checkRange(v: Volume, offset: number, length: number, what: string): void {
    requireAligned(`${what} offset`, offset, 0, Number.MAX_SAFE_INTEGER);
    requireAligned(`${what} length`, length, ARRAY_IO_ALIGN, ARRAY_MAX_IO_BYTES);
    if (offset + length > v.sizeBytes) {
      throw new InvalidArgumentError(`${what} of ${length} bytes at offset ${offset} ends past the end of volume '${v.name}' (${v.sizeBytes} bytes)`);
    }
  }

  // --- volumes ---------------------------------------------------------------------------------

  info(): Promise<ArrayInfo> {
    return this.shared(() => ({
      name: this.name,
      blockSize: ARRAY_BLOCK_SIZE,
      ioAlign: ARRAY_IO_ALIGN,
      maxIoBytes: ARRAY_MAX_IO_BYTES,
      volumes: this.volumes.size,
      snapshots: this.snapshots.size,
    }));
  }

  listVolumes(): Promise<ArrayVolume[]> {
    return this.shared(() => [...this.volumes.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((v) => this.volumeJson(v)));
  }

  getVolume(name: string): Promise<ArrayVolume> {
    return this.shared(() => this.volumeJson(this.volume(name)));
  }

  createVolume(name: string, sizeMib: number): Promise<ArrayVolume> {
    return this.exclusive(async () => {
      if (this.volumes.has(name)) throw new AlreadyExistsError(`storage array ${this.name} already has a volume '${name}'`);
      if (this.volumes.size >= MAX_VOLUMES) throw new ResourceExhaustedError(`storage array ${this.name} holds at most ${MAX_VOLUMES} volumes`);
      if (!Number.isInteger(sizeMib) || sizeMib < 1 || sizeMib > ARRAY_MAX_VOLUME_MIB) {
        throw new InvalidArgumentError(`sizeMib must be an integer from 1 to ${ARRAY_MAX_VOLUME_MIB} (got ${sizeMib})`);
      }
      const sizeBytes = sizeMib * MiB;
      const v: Volume = { name, sizeBytes, createdAt: new Date().toISOString(), layers: [this.newLayer(sizeBytes / ARRAY_BLOCK_SIZE)] };
      this.volumes.set(name, v);
      try {
        await this.persist();
      } catch (err) {
        this.volumes.delete(name);
        throw err;
      }
      this.log.info({ volume: name, sizeBytes }, 'volume created');
      return this.volumeJson(v);
    });
  }

  /** Refused while a snapshot covers the volume: snapshots are consistency groups, delete them first. */
  deleteVolume(name: string): Promise<void> {
    return this.exclusive(async () => {
      const v = this.volume(name);
      const snaps = this.volumeJson(v).snapshots;
      if (snaps.length > 0) {
        throw new FailedPreconditionError(`volume '${name}' is covered by snapshot${snaps.length > 1 ? 's' : ''} ${snaps.join(', ')}: delete ${snaps.length > 1 ? 'them' : 'it'} first`);
      }
      this.volumes.delete(name);
      try {
        await this.persist();
      } catch (err) {
        this.volumes.set(name, v);
        throw err;
      }
      for (const l of v.layers) await l.remove().catch((err: unknown) => this.log.warn({ err, layer: l.id }, 'could not remove a layer file'));
      this.log.info({ volume: name }, 'volume deleted');
    });
  }

  // --- data path -------------------------------------------------------------------------------

  /** Reads `length` bytes at `offset` through `chain` (newest layer first per block; none: zeros). */
  private static async readChain(chain: readonly Layer[], offset: number, length: number): Promise<Buffer> {
    const out = Buffer.alloc(length);
    const B = ARRAY_BLOCK_SIZE;
    let runLayer: Layer | undefined;
    let runStart = offset;
    let runEnd = offset;
    const flush = async () => {
      if (runLayer && runEnd > runStart) await runLayer.read(runStart, out, runStart - offset, runEnd - runStart);
    };
    for (let pos = offset; pos < offset + length; ) {
      const b = Math.floor(pos / B);
      const end = Math.min(offset + length, (b + 1) * B);
      let layer: Layer | undefined;
      for (let i = chain.length - 1; i >= 0; i--) {
        const l = chain[i];
        if (l?.has(b)) {
          layer = l;
          break;
        }
      }
      if (layer !== runLayer || pos !== runEnd) {
        await flush();
        runLayer = layer;
        runStart = pos;
      }
      runEnd = end;
      pos = end;
    }
    await flush();
    return out;
  }

  /** One write into the volume's top layer; a block new to the layer is first filled from below. */
  private async writeTop(v: Volume, offset: number, data: Uint8Array): Promise<void> {
    const B = ARRAY_BLOCK_SIZE;
    const top = v.layers[v.layers.length - 1];
    if (!top) throw new FailedPreconditionError(`volume '${v.name}' has no layers`);
    const below = v.layers.slice(0, -1);
    const fresh: number[] = [];
    // Pieces that go straight to the layer (its own blocks, or whole new ones) are written in runs.
    let runStart = offset;
    let runEnd = offset;
    const flush = async () => {
      if (runEnd > runStart) await top.write(runStart, data.subarray(runStart - offset, runEnd - offset));
    };
    for (let pos = offset; pos < offset + data.length; ) {
      const b = Math.floor(pos / B);
      const blockStart = b * B;
      const end = Math.min(offset + data.length, blockStart + B);
      const whole = pos === blockStart && end === blockStart + B;
      if (top.has(b) || whole) {
        if (pos !== runEnd) {
          await flush();
          runStart = pos;
        }
        runEnd = end;
        if (!top.has(b)) fresh.push(b);
      } else {
        await flush();
        runStart = runEnd = end;
        const block = await ArrayStore.readChain(below, blockStart, B);
        block.set(data.subarray(pos - offset, end - offset), pos - blockStart);
        await top.write(blockStart, block);
        fresh.push(b);
      }
      pos = end;
    }
    await flush();
    // Bits only after the data: a crash in between loses the write, never exposes stale bytes.
    await top.mark(fresh);
  }

  write(volume: string, offset: number, data: Uint8Array): Promise<void> {
    return this.writeBatch([{ volume, offset, data }]);
  }

  /** Applies the writes in order as one step: no snapshot falls between them. */
  writeBatch(writes: readonly ArrayWrite[]): Promise<void> {
    return this.exclusive(async () => {
      if (writes.length === 0 || writes.length > ARRAY_MAX_GROUP) throw new InvalidArgumentError(`a batch holds 1 to ${ARRAY_MAX_GROUP} writes (got ${writes.length})`);
      let total = 0;
      const targets = writes.map((w, i) => {
        const v = this.volume(w.volume);
        ArrayStore.checkRange(v, w.offset, w.data.length, writes.length > 1 ? `write ${i}` : 'write');
        total += w.data.length;
        return v;
      });
      if (total > ARRAY_MAX_IO_BYTES) throw new InvalidArgumentError(`a batch writes at most ${ARRAY_MAX_IO_BYTES} bytes (got ${total})`);
      for (const [i, w] of writes.entries()) {
        const v = targets[i];
        if (!v) continue;
        try {
          await this.writeTop(v, w.offset, w.data);
        } catch (err) {
          throw this.ioError(err, `volume '${w.volume}'`);
        }
      }
    });
  }

  read(volume: string, offset: number, length: number): Promise<Buffer> {
    return this.shared(() => {
      const v = this.volume(volume);
      ArrayStore.checkRange(v, offset, length, 'read');
      return ArrayStore.readChain(v.layers, offset, length);
    });
  }

  // --- snapshots -------------------------------------------------------------------------------

  /** Freezes the top layer of every named volume at one instant and gives each a new empty top. */
  createSnapshot(names: readonly string[], label?: string): Promise<ArraySnapshot> {
    return this.exclusive(async () => {
      if (names.length === 0 || names.length > ARRAY_MAX_GROUP) throw new InvalidArgumentError(`a snapshot covers 1 to ${ARRAY_MAX_GROUP} volumes (got ${names.length})`);
      if (new Set(names).size !== names.length) throw new InvalidArgumentError(`a snapshot names each volume once (got ${names.join(', ')})`);
      if (this.snapshots.size >= MAX_SNAPSHOTS) throw new ResourceExhaustedError(`storage array ${this.name} holds at most ${MAX_SNAPSHOTS} snapshots`);
      const vols = names.map((n) => this.volume(n));
      const s: Snapshot = { id: newId('snap'), seq: this.nextSeq++, createdAt: new Date().toISOString(), ...(label !== undefined ? { label } : {}), volumes: [] };
      for (const v of vols) {
        const frozen = v.layers[v.layers.length - 1];
        if (!frozen) throw new FailedPreconditionError(`volume '${v.name}' has no layers`);
        s.volumes.push({ name: v.name, sizeBytes: v.sizeBytes, layer: frozen });
        v.layers.push(this.newLayer(v.sizeBytes / ARRAY_BLOCK_SIZE));
      }
      this.snapshots.set(s.id, s);
      try {
        await this.persist();
      } catch (err) {
        this.snapshots.delete(s.id);
        for (const v of vols) v.layers.pop();
        throw err;
      }
      this.log.info({ snapshot: s.id, volumes: names, label }, 'snapshot taken');
      return ArrayStore.snapshotJson(s);
    });
  }

  listSnapshots(): Promise<ArraySnapshot[]> {
    return this.shared(() => [...this.snapshots.values()].sort((a, b) => a.seq - b.seq).map((s) => ArrayStore.snapshotJson(s)));
  }

  getSnapshot(id: string): Promise<ArraySnapshot> {
    return this.shared(() => ArrayStore.snapshotJson(this.snapshot(id)));
  }

  /**
   * Forgets the snapshot first (state.json), then folds the layer it froze into the next one of each
   * volume: blocks the next layer lacks are copied up, so every remaining view reads what it read before;
   * a crash part way leaves a longer chain with the same content.
   */
  deleteSnapshot(id: string): Promise<void> {
    return this.exclusive(async () => {
      const s = this.snapshot(id);
      this.snapshots.delete(id);
      try {
        await this.persist();
      } catch (err) {
        this.snapshots.set(id, s);
        throw err;
      }
      const gone: Layer[] = [];
      let copied = 0;
      for (const sv of s.volumes) {
        const v = this.volumes.get(sv.name);
        const i = v ? v.layers.indexOf(sv.layer) : -1;
        const next = v?.layers[i + 1];
        if (!v || i < 0 || !next) continue;
        try {
          copied += await ArrayStore.foldInto(sv.layer, next);
        } catch (err) {
          throw this.ioError(err, `volume '${v.name}'`);
        }
        v.layers.splice(i, 1);
        gone.push(sv.layer);
      }
      await this.persist();
      for (const l of gone) await l.remove().catch((err: unknown) => this.log.warn({ err, layer: l.id }, 'could not remove a layer file'));
      this.log.info({ snapshot: id, blocksFolded: copied }, 'snapshot deleted');
    });
  }

  /** Copies the blocks of `from` that `into` lacks into `into`; returns how many. */
  private static async foldInto(from: Layer, into: Layer): Promise<number> {
    const bits = from.bitmap();
    if (!bits) return 0;
    const missing = new Uint8Array(bits.length);
    const nextBits = into.bitmap();
    for (let i = 0; i < bits.length; i++) missing[i] = (bits[i] ?? 0) & ~(nextBits?.[i] ?? 0);
    const B = ARRAY_BLOCK_SIZE;
    let n = 0;
    for (const [first, count] of blockRuns(missing)) {
      for (let b = first; b < first + count; b += MERGE_RUN_BLOCKS) {
        const k = Math.min(MERGE_RUN_BLOCKS, first + count - b);
        const buf = Buffer.alloc(k * B);
        await from.read(b * B, buf, 0, k * B);
        await into.write(b * B, buf);
        await into.mark(Array.from({ length: k }, (_, j) => b + j));
        n += k;
      }
    }
    return n;
  }

  readSnapshot(id: string, volume: string, offset: number, length: number): Promise<Buffer> {
    return this.shared(() => {
      const { v, chain } = this.view(this.snapshot(id), volume);
      ArrayStore.checkRange(v, offset, length, 'read');
      return ArrayStore.readChain(chain, offset, length);
    });
  }

  /** The blocks that hold data in the snapshot's view of `volume`. */
  allocated(id: string, volume: string): Promise<BlockBitmap> {
    return this.shared(() => {
      const { v, chain } = this.view(this.snapshot(id), volume);
      return ArrayStore.union(v, chain);
    });
  }

  /** The blocks written after `baseId` up to `id` (both snapshots of `volume`, base not newer). */
  diff(id: string, volume: string, baseId: string): Promise<BlockBitmap> {
    return this.shared(() => {
      const s = this.snapshot(id);
      const { v, chain } = this.view(s, volume);
      const base = this.snapshot(baseId);
      if (!base.volumes.some((x) => x.name === volume)) {
        throw new InvalidArgumentError(`base snapshot ${baseId} does not cover volume '${volume}' (it covers ${base.volumes.map((x) => x.name).join(', ')})`);
      }
      if (base.seq > s.seq) throw new InvalidArgumentError(`base snapshot ${baseId} (${base.createdAt}) is newer than snapshot ${id} (${s.createdAt})`);
      const { chain: baseChain } = this.view(base, volume);
      return ArrayStore.union(v, chain.slice(baseChain.length));
    });
  }

  private static union(v: Volume, layers: readonly Layer[]): BlockBitmap {
    const blocks = v.sizeBytes / ARRAY_BLOCK_SIZE;
    const bitmap = new Uint8Array(bitmapByteLength(blocks));
    for (const l of layers) {
      const bits = l.bitmap();
      if (bits) orInto(bitmap, bits);
    }
    return { blockSize: ARRAY_BLOCK_SIZE, blocks, bitmap };
  }

  /** Waits for the operations in progress, then closes every file; later calls are refused. */
  close(): Promise<void> {
    return this.lock.exclusive(async () => {
      if (this.closed) return;
      this.closed = true;
      for (const v of this.volumes.values()) for (const l of v.layers) await l.close();
    });
  }
}
