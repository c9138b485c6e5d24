/**
 * A simulated VM's disks on the driver's side: their layer chains in the
 * datastore, change tracking, snapshots and merges.
 *
 * One writer at a time: while the guest runs, the worker writes the disks and
 * runs merges; the driver changes chains only while the guest is parked (or
 * has no worker), then posts the new chains, which the worker takes before it
 * writes again.
 *
 * A shareable snapshot leaves its frozen layers as a base linked clones may
 * overlay, so the chain keeps them. Once no other VM (on any host) references
 * such a base, the VM claims it back (see Datastore.claim) and the next merge
 * folds the layers above into it, as after any other snapshot: chains stay
 * short however many linked clones came and went. The check is lazy (a clone
 * on another host cannot tell the source it is gone): at each compaction and
 * on load.
 *
 * A storage snapshot pins its frozen layers with a reference of its own (see
 * pin()): to the VM they are then a base someone else uses, so it never claims
 * or folds them, and the chain keeps one more layer per snapshot. Once the pins
 * above a base are gone (its snapshots deleted), the VM claims it back as above;
 * a base below a layer still pinned stays, since claims go from the top down.
 */
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { write } from 'node:fs';
import { FailedPreconditionError, InvalidArgumentError, DISK_BLOCK_SIZE, type DiskSpec } from '../../../../shared/src/mod.js';
import type { DiskInfo, DiskSnapshot, LayerUsage, SnapshotOptions, SnapshotOutcome } from '../driver.js';
import { ChangeTracker } from './cbt.js';
import { ChainIo } from './chain-io.js';
import { readChainRecord, writeChainRecord, type ChainRecord } from './chain-record.js';
import type { Datastore } from './datastore.js';
import { writeImage } from './disk-image.js';
import { ChainView, SimDiskSnapshot, type SnapshotOwner } from './disk-view.js';
import { LayerFile, ZERO_FLAG, bitmapWords } from './layer-io.js';
import type { FromWorker, ToWorker, WorkerDisksData } from './layout.js';
import type { HotBuffers } from './hot-buffer.js';
import { waitWhile } from './wait.js';

/** How new disks start: with their image's content, blank, or as overlays on shared base chains. */
export type DiskStart = { kind: 'image' } | { kind: 'blank' } | { kind: 'linked'; chains: string[][] };

export function diskInfo(spec: Pick<DiskSpec, 'name' | 'sizeMib'>): DiskInfo {
  const sizeBytes = spec.sizeMib * 1024 * 1024;
  return { name: spec.name, sizeBytes, blockSize: DISK_BLOCK_SIZE, blockCount: sizeBytes / DISK_BLOCK_SIZE };
}

function writeAsync(fd: number, data: Buffer, pos: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (done: number): void => {
      if (done >= data.length) return resolve();
      write(fd, data, done, data.length - done, pos + done, (err, n) => (err ? reject(err) : step(done + n)));
    };
    step(0);
  });
}

export class VmDisks {
  readonly infos: DiskInfo[];
  private readonly pending: SharedArrayBuffer[];
  private readonly mergeCtlBuffer = new SharedArrayBuffer(16 * 4);
  private readonly mergeCtl = new Int32Array(this.mergeCtlBuffer);
  private port: MessagePort | undefined;
  /** Disk -> id of the merge the worker runs. */
  private readonly inflight = new Map<number, number>();
  private mergeSeq = 0;
  private readonly snapshots = new Set<SimDiskSnapshot>();
  /** The files are closed (the VM stopped or was destroyed). */
  private closed = false;

  private constructor(
    private readonly ds: Datastore,
    private readonly vmDir: string,
    /** This VM's name in layer references: host id and VM id. */
    private readonly ref: string,
    specs: readonly DiskSpec[],
    private readonly chains: ChainIo[],
    readonly trackers: ChangeTracker[],
  ) {
    this.infos = specs.map(diskInfo);
    this.pending = this.infos.map((i) => new SharedArrayBuffer(bitmapWords(i.blockCount) * 4));
  }

  /** Creates the VM's disks in the datastore; on failure nothing is left behind. */
  static create(ds: Datastore, vmDir: string, ref: string, specs: readonly DiskSpec[], start: DiskStart): VmDisks {
    if (specs.length > 16) throw new InvalidArgumentError(`a VM has at most 16 disks (got ${specs.length})`);
    if (start.kind === 'linked' && start.chains.length !== specs.length) {
      throw new InvalidArgumentError(`linked chains for ${start.chains.length} of ${specs.length} disks`);
    }
    const chains: ChainIo[] = [];
    const taken: string[] = [];
    try {
      specs.forEach((spec, d) => {
        const info = diskInfo(spec);
        chains.push(VmDisks.newChain(ds, ref, info, start.kind === 'linked' ? start.chains[d]! : [], taken));
        if (start.kind === 'image' && spec.image !== '') writeImage(chains[d]!.top, spec.image, info.blockCount);
      });
      const disks = new VmDisks(ds, vmDir, ref, specs, chains, specs.map((s) => new ChangeTracker(diskInfo(s).blockCount)));
      disks.writeRecord();
      ChangeTracker.save(vmDir, disks.trackers, false);
      return disks;
    } catch (err) {
      for (const c of chains) for (const l of c.layers) l.close();
      for (const id of taken) ds.dropRef(id, ref);
      throw err;
    }
  }

  /**
   * A chain of `base` (shared, referenced by this VM) plus a new empty layer on top. `taken` gets the references
   * added, for the caller to drop on failure; those to layers in `held` (which the VM references already) are not
   * listed, so dropping them never takes a reference the VM still needs.
   */
  private static newChain(ds: Datastore, ref: string, info: DiskInfo, base: readonly string[], taken: string[], held?: ReadonlySet<string>): ChainIo {
    const layers: LayerFile[] = [];
    try {
      for (const id of base) {
        ds.addRef(id, ref);
        if (!held?.has(id)) taken.push(id);
        layers.push(new LayerFile(ds.openLayer(id, info.blockCount, info.blockSize), info.blockSize));
      }
      const top = ds.createLayer(info.sizeBytes, ref);
      taken.push(top);
      layers.push(new LayerFile(ds.openLayer(top, info.blockCount, info.blockSize), info.blockSize));
    } catch (err) {
      for (const l of layers) l.close();
      throw err;
    }
    return new ChainIo(layers, base.length, info.blockCount, info.blockSize);
  }

  /** Opens the disks a previous run left, folds any unfinished merge, and takes change tracking if it was stopped cleanly. */
  static load(ds: Datastore, vmDir: string, ref: string, specs: readonly DiskSpec[]): VmDisks {
    const records: ChainRecord[] = readChainRecord(vmDir);
    if (records.length !== specs.length) throw new Error(`the chain record has ${records.length} disks, the spec ${specs.length}`);
    const chains: ChainIo[] = [];
    const opened: LayerFile[] = [];
    try {
      specs.forEach((spec, d) => {
        const info = diskInfo(spec);
        const r = records[d]!;
        const layers = r.layers.map((id) => {
          const l = new LayerFile(ds.openLayer(id, info.blockCount, info.blockSize), info.blockSize);
          opened.push(l);
          return l;
        });
        chains.push(new ChainIo(layers, r.shared, info.blockCount, info.blockSize));
      });
    } catch (err) {
      for (const l of opened) l.close();
      throw err;
    }
    const disks = new VmDisks(ds, vmDir, ref, specs, chains, ChangeTracker.load(vmDir, specs.map((s) => diskInfo(s).blockCount)));
    disks.reclaimShared();
    disks.mergeHere();
    return disks;
  }

  /** A view of the current chain: consistent only while the guest does not run (for tests and checks). */
  liveView(disk: number): ChainView {
    const info = this.infos[disk];
    if (!info) throw new InvalidArgumentError(`disk ${disk} does not exist (the VM has ${this.infos.length})`);
    // A merge the worker ended just before it parked may have dropped layers: take its word first, or the view
    // would hold files that the message, handled later, closes under it.
    this.drain();
    return new ChainView(info, this.chains[disk]!.layers.slice(), () => !this.closed);
  }

  /** Layer ids per disk, bottom first. */
  chainIds(): string[][] {
    return this.chains.map((c) => c.ids());
  }

  /**
   * What the disks hold on the datastore, per layer: a layer is shared while it is in the chain's immutable base or
   * another VM (or a storage snapshot) references it too; the rest is this VM's own.
   */
  storageUsage(): LayerUsage[] {
    this.drain();
    return this.chains.flatMap((c, d) =>
      c.layers.map((l, i) => ({ disk: d, id: l.id, bytes: l.dataBytes(), shared: i < c.shared || this.ds.refs(l.id).some((r) => r !== this.ref) })),
    );
  }

  private writeRecord(): void {
    writeChainRecord(
      this.vmDir,
      this.chains.map((c) => ({ layers: c.ids(), shared: c.shared })),
    );
  }

  // ---- the worker ----

  /** What a new guest worker needs; the driver keeps the other end of the message port. */
  workerData(): { data: WorkerDisksData; transfer: MessagePort } {
    this.checkOpen();
    this.detachWorker();
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (m: FromWorker) => this.onMessage(m));
    port1.unref();
    this.port = port1;
    const data: WorkerDisksData = {
      vmDir: this.vmDir,
      blockSize: DISK_BLOCK_SIZE,
      blockCounts: this.infos.map((i) => i.blockCount),
      chains: this.workerChains().chains,
      cbt: this.trackers.map((t) => t.buffer),
      pending: this.pending,
      mergeCtl: this.mergeCtlBuffer,
      port: port2,
    };
    return { data, transfer: port2 };
  }

  /** The worker is gone (stopped or crashed): take what it said, and forget the merges it did not finish. */
  detachWorker(): void {
    if (!this.port) return;
    this.drain();
    this.port.close();
    this.port = undefined;
    for (const d of this.inflight.keys()) {
      Atomics.store(this.mergeCtl, d, 0);
      new Int32Array(this.pending[d]!).fill(0);
    }
    this.inflight.clear();
  }

  private workerChains(): ToWorker & { t: 'chain' } {
    return { t: 'chain', chains: this.chains.map((c) => ({ layers: c.layers.map((l) => l.desc), shared: c.shared })) };
  }

  /**
   * Tells a parked worker the new chains; it takes them before its next write. Also after a hot freeze the guest
   * never took: it then takes the new overlays from this message instead.
   */
  postChains(): void {
    if (!this.port) return;
    const msg: ToWorker = this.workerChains();
    this.port.postMessage(msg);
  }

  /** Takes the worker's messages now rather than on a later turn of the event loop. */
  drain(): void {
    if (!this.port) return;
    for (;;) {
      const m = receiveMessageOnPort(this.port) as { message: FromWorker } | undefined;
      if (!m) return;
      this.onMessage(m.message);
    }
  }

  private onMessage(m: FromWorker): void {
    if (this.inflight.get(m.disk) !== m.id) return;
    this.inflight.delete(m.disk);
    const chain = this.chains[m.disk]!;
    const gone = new Set(m.dropped);
    const dropped = chain.layers.filter((l) => gone.has(l.id));
    chain.layers = chain.layers.filter((l) => !gone.has(l.id));
    this.dropLayers(dropped);
  }

  private dropLayers(layers: readonly LayerFile[]): void {
    for (const l of layers) {
      l.close();
      this.ds.dropRef(l.id, this.ref);
    }
  }

  // ---- merges ----

  private checkOpen(): void {
    if (this.closed) throw new FailedPreconditionError('the VM is stopped: its disks are closed');
  }

  /** A snapshot whose frozen layers a merge would change is still open (or there is nothing to merge in). */
  private get mergeBlocked(): boolean {
    if (this.closed) return true;
    for (const s of this.snapshots) if (!s.shareable) return true;
    return false;
  }

  /**
   * Takes back the frozen shared bases that no other VM references any more, so that the next merge folds the
   * layers above into them: per disk, from the top of the shared ones down, stopping at the first that another VM
   * (on any host) uses or an open snapshot holds. Only lowers `shared` in memory: the record follows with the
   * merge (by whichever thread ends it), and until then the claims in the datastore keep the bases private, so
   * a crash loses nothing (the chain reads the same; the next load claims them again). Skips disks whose merge
   * runs in the worker. Only while no snapshot blocks merges.
   */
  private reclaimShared(): void {
    if (this.mergeBlocked) return;
    // An open shareable snapshot's frozen chain is the base it may hand out: it stays shared.
    const floor = this.infos.map(() => 0);
    for (const s of this.snapshots) s.chains.forEach((c, d) => (floor[d] = Math.max(floor[d]!, c.length)));
    this.chains.forEach((c, d) => {
      if (this.inflight.has(d)) return;
      let shared = c.shared;
      while (shared > floor[d]! && this.ds.claim(c.layers[shared - 1]!.id, this.ref)) shared--;
      c.shared = shared;
    });
  }

  /**
   * Folds each disk's layers above its lowest mutable one back into it, so chains do not grow per snapshot:
   * in the worker while the guest runs (no pause), or here at once when it does not. Shared bases no other VM
   * uses any more are taken back first (reclaimShared), so they fold too.
   */
  compact(running: boolean, wake: () => void): void {
    this.drain();
    if (this.mergeBlocked) return;
    this.reclaimShared();
    if (!running || !this.port) {
      this.mergeHere();
      return;
    }
    this.chains.forEach((c, d) => {
      if (c.mergeSources === 0 || this.inflight.has(d)) return;
      const id = ++this.mergeSeq;
      Atomics.store(this.mergeCtl, d, id);
      this.inflight.set(d, id);
      const msg: ToWorker = { t: 'merge', disk: d, id, shared: c.shared };
      this.port!.postMessage(msg);
    });
    wake();
  }

  /** Withdraws the worker's merges: it skips a withdrawn request, and the next chains posted reset it. */
  private withdrawMerges(): boolean {
    const withdrawn = this.inflight.size > 0;
    for (const d of this.inflight.keys()) {
      Atomics.store(this.mergeCtl, d, 0);
      new Int32Array(this.pending[d]!).fill(0);
    }
    this.inflight.clear();
    return withdrawn;
  }

  /** Finishes every merge on this thread. Only while the guest is parked or has no worker. */
  mergeHere(): void {
    this.drain();
    if (this.mergeBlocked) return;
    const withdrawn = this.withdrawMerges();
    const dropped = this.chains.flatMap((c) => c.mergeAll());
    if (dropped.length === 0 && !withdrawn) return;
    this.writeRecord();
    this.postChains();
    this.dropLayers(dropped);
  }

  /** Resolves once no merge runs; when the guest stops running meanwhile, finishes them here. */
  async settle(running: () => boolean): Promise<void> {
    for (;;) {
      this.drain();
      const first = this.inflight.entries().next();
      if (first.done) return;
      const [d, id] = first.value;
      if (!running()) {
        this.mergeHere();
        return;
      }
      await waitWhile(this.mergeCtl, d, id, 20);
    }
  }

  // ---- snapshots ----

  /**
   * The frozen moment (the guest is parked or has no worker; merges are settled): each disk's active layer
   * becomes read-only and a new empty one goes on top. O(1): no data is copied. With `hot` (a hot clone) the
   * guest runs on instead, and the moment is its freeze step (see guest-worker.ts).
   */
  freeze(opts: SnapshotOptions, owner: SnapshotOwner, hot?: { id: number; buffers: HotBuffers }): DiskSnapshot {
    if (hot && !this.port) throw new FailedPreconditionError('a hot freeze needs the guest running');
    this.checkOpen();
    this.drain();
    if (this.inflight.size > 0) throw new FailedPreconditionError('a disk merge is still running');
    const checkpoint = opts.checkpoint;
    if (checkpoint !== undefined) {
      for (const t of this.trackers) if (t.checkpointOpen) throw new FailedPreconditionError('another checkpoint of this VM is still open');
    }
    const tops: string[] = [];
    try {
      for (const info of this.infos) tops.push(this.ds.createLayer(info.sizeBytes, this.ref));
    } catch (err) {
      for (const id of tops) this.ds.dropRef(id, this.ref);
      throw err;
    }
    const frozen = this.chains.map((c, d) => {
      const info = this.infos[d]!;
      const layers = c.layers.slice();
      c.layers.push(new LayerFile(this.ds.openLayer(tops[d]!, info.blockCount, info.blockSize), info.blockSize));
      if (opts.shareable) c.shared = c.layers.length - 1;
      return { info, layers };
    });
    this.writeRecord();
    // The frozen layers are a base others may link from now on: undo any claim on them (after the record, so a
    // crash in between leaves claimed layers in the shared part, which the next load claims again).
    if (opts.shareable) for (const c of this.chains) for (const l of c.layers.slice(0, c.shared)) this.ds.share(l.id);
    const changes = checkpoint === undefined ? [] : this.trackers.map((t) => t.checkpoint(checkpoint));
    if (hot) {
      // A running guest takes the new overlays at its freeze step, with its memory freeze: until then it writes the
      // frozen layers, which the snapshot is read from only once the guest has acknowledged the freeze.
      const msg: ToWorker = { t: 'hot', id: hot.id, chains: this.workerChains().chains, buffers: hot.buffers };
      this.port!.postMessage(msg);
    } else {
      this.postChains();
    }
    const chains = opts.shareable ? frozen.map((f) => f.layers.map((l) => l.id)) : [];
    const snap = new SimDiskSnapshot(owner, frozen, changes, chains, checkpoint !== undefined, opts.shareable === true);
    this.snapshots.add(snap);
    return snap;
  }

  /** Ends a snapshot's part in change tracking and in merges; the caller then compacts. */
  endSnapshot(snap: DiskSnapshot, outcome: SnapshotOutcome, alsoChanged?: (Uint32Array | null)[]): void {
    const s = snap as SimDiskSnapshot;
    if (!this.snapshots.delete(s)) return;
    if (s.checkpoint) this.trackers.forEach((t, i) => t.settle(outcome, alsoChanged ? (alsoChanged[i] ?? null) : undefined));
  }

  /** Every open snapshot ends as aborted, without merging (a clean stop): the next load folds the layers. */
  abortSnapshots(): void {
    for (const s of [...this.snapshots]) {
      s.released = true;
      this.endSnapshot(s, 'abort');
    }
  }

  // ---- target side ----

  /**
   * Writes whole blocks into the active layer; zero blocks over zeros cost nothing, over data a log entry. Every
   * block whose content may change gets its change bit.
   */
  async writeBlocks(disk: number, first: number, data: Buffer): Promise<void> {
    const info = this.infos[disk];
    if (!info) throw new InvalidArgumentError(`disk ${disk} does not exist (the VM has ${this.infos.length})`);
    this.checkOpen();
    const bs = info.blockSize;
    const count = data.length / bs;
    if (!Number.isInteger(count) || !Number.isInteger(first) || first < 0 || first + count > info.blockCount) {
      throw new InvalidArgumentError(`${data.length} bytes at block ${first} do not fit disk '${info.name}' (${info.blockCount} blocks of ${bs})`);
    }
    const chain = this.chains[disk]!;
    const top = chain.top;
    const entries: number[] = [];
    const changed: number[] = [];
    const writes: Promise<void>[] = [];
    let run = -1;
    const flush = (end: number) => {
      if (run < 0) return;
      writes.push(writeAsync(top.fd, data.subarray((run - first) * bs, (end - first) * bs), run * bs));
      run = -1;
    };
    for (let b = first; b < first + count; b++) {
      const block = data.subarray((b - first) * bs, (b - first + 1) * bs);
      if (isZero(block)) {
        flush(b);
        const h = chain.holder(b);
        if (h >= 0 && !chain.layers[h]!.isZero(b)) {
          entries.push((b | ZERO_FLAG) >>> 0);
          changed.push(b);
        }
        continue;
      }
      changed.push(b);
      if (run < 0) run = b;
      if (!top.holdsData(b)) entries.push(b);
    }
    flush(first + count);
    await Promise.all(writes);
    // The data is down: now the allocation record may name it, and change tracking must, or an incremental
    // backup would miss it (a clone's inheritChanges replaces these bits anyway).
    top.record(entries);
    this.trackers[disk]!.mark(changed);
  }

  /** Replaces the disks (of a VM that is not running) by overlays on shared base chains: a linked clone. */
  link(chains: readonly string[][]): void {
    if (chains.length !== this.infos.length) throw new InvalidArgumentError(`linked chains for ${chains.length} of ${this.infos.length} disks`);
    this.checkOpen();
    if (this.snapshots.size > 0) throw new FailedPreconditionError('the VM has open disk snapshots');
    const taken: string[] = [];
    const fresh: ChainIo[] = [];
    try {
      this.infos.forEach((info, d) => fresh.push(VmDisks.newChain(this.ds, this.ref, info, chains[d]!, taken)));
    } catch (err) {
      for (const c of fresh) for (const l of c.layers) l.close();
      for (const id of taken) this.ds.dropRef(id, this.ref);
      throw err;
    }
    const old = this.chains.splice(0, this.chains.length, ...fresh);
    this.writeRecord();
    this.postChains();
    this.dropLayers(old.flatMap((c) => c.layers.filter((l) => !taken.includes(l.id))));
  }

  /**
   * Pins frozen layers (a storage snapshot's, from a shareable freeze) with reference `ref`: while the pin holds
   * them, claim() fails, so they stay an immutable shared base of this VM's chain, and they outlive the VM. All
   * or nothing.
   */
  pin(chains: readonly string[][], ref: string): void {
    const added: string[] = [];
    try {
      for (const id of new Set(chains.flat())) {
        this.ds.addRef(id, ref);
        added.push(id);
      }
    } catch (err) {
      for (const id of added) this.ds.dropRef(id, ref);
      throw err;
    }
  }

  /**
   * Reverts the disks (of a VM that is not running) to frozen chains: fresh empty overlays on them, as link(),
   * except that the VM may already reference some of their layers. Its other layers are dropped (those pinned by
   * storage snapshots stay, with their pins), merges in progress are withdrawn (their layers go anyway), and change
   * tracking is marked lost: the disks changed behind it.
   */
  revert(chains: readonly string[][]): void {
    if (chains.length !== this.infos.length) throw new InvalidArgumentError(`chains for ${chains.length} of ${this.infos.length} disks`);
    this.checkOpen();
    if (this.snapshots.size > 0) throw new FailedPreconditionError('the VM has open disk snapshots (a backup or a clone is using them)');
    this.drain();
    const held = new Set(this.chains.flatMap((c) => c.ids()));
    const taken: string[] = [];
    const fresh: ChainIo[] = [];
    try {
      this.infos.forEach((info, d) => fresh.push(VmDisks.newChain(this.ds, this.ref, info, chains[d]!, taken, held)));
    } catch (err) {
      for (const c of fresh) for (const l of c.layers) l.close();
      for (const id of taken) this.ds.dropRef(id, this.ref);
      throw err;
    }
    this.withdrawMerges();
    for (const t of this.trackers) t.inherit(null);
    const old = this.chains.splice(0, this.chains.length, ...fresh);
    this.writeRecord();
    this.postChains();
    const keep = new Set(fresh.flatMap((c) => c.ids()));
    for (const c of old) {
      for (const l of c.layers) {
        l.close();
        if (!keep.has(l.id)) this.ds.dropRef(l.id, this.ref);
      }
    }
  }

  /** Closes the files (a stop); the layers stay. */
  close(): void {
    this.detachWorker();
    this.closed = true;
    for (const c of this.chains) for (const l of c.layers) l.close();
  }

  /** Closes the files and drops this VM's references: its own layers go, shared bases stay while others use them. */
  destroy(): void {
    this.abortSnapshots();
    this.close();
    for (const c of this.chains) for (const l of c.layers) this.ds.dropRef(l.id, this.ref);
  }
}

const ZERO_BLOCK = Buffer.alloc(DISK_BLOCK_SIZE);

function isZero(block: Buffer): boolean {
  return block.length === ZERO_BLOCK.length ? block.equals(ZERO_BLOCK) : block.every((x) => x === 0);
}
