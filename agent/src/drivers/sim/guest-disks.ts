/**
 * The guest worker's side of the disks: 4 KiB guest writes through the layer
 * chain (with copy-up), a changed-block-tracking bit after each write, and the
 * merges the driver asks for, run in small steps between write bursts. The
 * worker is the only writer of the disks while it runs, so a merge needs no
 * pause: blocks the guest re-dirties are simply copied again.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { ChainIo } from './chain-io.js';
import { writeChainRecord } from './chain-record.js';
import { LayerFile } from './layer-io.js';
import type { FromWorker, ToWorker, WorkerChain, WorkerDisksData } from './layout.js';

export class GuestDisks {
  private chains: ChainIo[] = [];
  private readonly files = new Map<string, LayerFile>();
  private readonly cbt: Int32Array[];
  private readonly pending: Int32Array[];
  private readonly mergeCtl: Int32Array;
  /** Disk index -> merge id, for merges in progress. */
  private readonly merges = new Map<number, number>();
  private readonly port: MessagePort;
  private readonly starts: number[] = [];
  readonly totalBlocks: number;
  readonly blockSize: number;
  /** A hot freeze the driver posted: held, with every message after it, until the worker freezes. */
  private hot: (ToWorker & { t: 'hot' }) | undefined;

  constructor(
    private readonly data: WorkerDisksData,
    /** The id of the hot freeze the driver asks for now (0: none); a held 'hot' message of another id is stale. */
    private readonly currentHotId: () => number = () => 0,
  ) {
    this.blockSize = data.blockSize;
    this.cbt = data.cbt.map((b) => new Int32Array(b));
    this.pending = data.pending.map((b) => new Int32Array(b));
    this.mergeCtl = new Int32Array(data.mergeCtl);
    this.port = data.port;
    let total = 0;
    for (const n of data.blockCounts) {
      this.starts.push(total);
      total += n;
    }
    this.totalBlocks = total;
    this.setChains(data.chains);
  }

  private setChains(chains: WorkerChain[]): void {
    const keep = new Set<string>();
    this.chains = chains.map((c, d) => {
      const layers = c.layers.map((desc) => {
        keep.add(desc.id);
        let f = this.files.get(desc.id);
        if (!f) {
          f = new LayerFile(desc, this.blockSize);
          this.files.set(desc.id, f);
        }
        return f;
      });
      return new ChainIo(layers, c.shared, this.data.blockCounts[d]!, this.blockSize);
    });
    for (const [id, f] of this.files) {
      if (keep.has(id)) continue;
      f.close();
      this.files.delete(id);
    }
    this.merges.clear();
  }

  /**
   * Takes every message the driver queued; called before each write burst and right after a resume. Only the
   * last chain counts: the driver may have deleted layers an earlier one named.
   */
  drain(): void {
    let chains: WorkerChain[] | undefined;
    let merges: { disk: number; id: number; shared: number }[] = [];
    // A freeze the driver withdrew (it gave up waiting) must not hold up the messages after it.
    if (this.hot && this.hot.id !== this.currentHotId()) this.hot = undefined;
    while (!this.hot) {
      const m = receiveMessageOnPort(this.port) as { message: ToWorker } | undefined;
      if (!m) break;
      const msg = m.message;
      if (msg.t === 'hot') {
        if (msg.id === this.currentHotId()) this.hot = msg;
      } else if (msg.t === 'chain') {
        chains = msg.chains;
        merges = [];
      } else {
        merges.push(msg);
      }
    }
    if (chains) this.setChains(chains);
    for (const { disk, id, shared } of merges) {
      // An id the driver has since withdrawn (it merged while the guest was parked) is stale and skipped.
      if (Atomics.load(this.mergeCtl, disk) !== id) continue;
      const chain = this.chains[disk]!;
      // Only ever lowered: the driver took frozen bases back, and the merge folds into the lowest of them.
      if (shared < chain.shared) chain.shared = shared;
      chain.startMerge(this.pending[disk]!);
      this.merges.set(disk, id);
    }
  }

  /**
   * The disk level of a hot freeze: takes the held freeze's chains (the frozen layers plus a new overlay per disk,
   * so the guest's next writes make new blocks) and returns its buffers; undefined if the message has not come.
   */
  takeHot(id: number): (ToWorker & { t: 'hot' }) | undefined {
    this.drain();
    const hot = this.hot;
    if (!hot || hot.id !== id) return undefined;
    this.hot = undefined;
    this.setChains(hot.chains);
    return hot;
  }

  /** A guest write of `data` at byte `off` of global block g (the disks' blocks end to end). */
  write(g: number, off: number, data: Buffer): void {
    let d = this.starts.length - 1;
    while (d > 0 && this.starts[d]! > g) d--;
    const b = g - this.starts[d]!;
    this.chains[d]!.guestWrite(b, off, data);
    // Data first, then the bit, like the memory dirty log: a checkpoint that takes the bit sees the data.
    Atomics.or(this.cbt[d]!, b >>> 5, 1 << (b & 31));
  }

  get merging(): boolean {
    return this.merges.size > 0;
  }

  /** One step of every merge in progress; a merge that copied everything ends here, before the next write. */
  mergeStep(): void {
    for (const [d, id] of [...this.merges]) {
      const chain = this.chains[d]!;
      if (Atomics.load(this.mergeCtl, d) !== id) {
        // Withdrawn: the driver finished it while the guest was parked and posted the chains that resulted.
        chain.cancelMerge();
        this.merges.delete(d);
        continue;
      }
      if (!chain.mergeStep()) continue;
      const dropped = chain.finishMerge();
      this.merges.delete(d);
      // The shorter chain is on disk before any write lands in the target for a block a source held.
      writeChainRecord(
        this.data.vmDir,
        this.chains.map((c) => ({ layers: c.ids(), shared: c.shared })),
      );
      for (const f of dropped) {
        f.close();
        this.files.delete(f.id);
      }
      const msg: FromWorker = { t: 'merged', disk: d, id, dropped: dropped.map((f) => f.id) };
      this.port.postMessage(msg);
      Atomics.store(this.mergeCtl, d, 0);
      Atomics.notify(this.mergeCtl, d);
    }
  }

  close(): void {
    for (const f of this.files.values()) f.close();
    this.files.clear();
  }
}
