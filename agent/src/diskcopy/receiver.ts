/**
 * The target side of a disk copy: gives a clone whose memory arrived its disks,
 * from the blocks the source streams (or, on a shared datastore, by overlaying
 * the source's frozen layers), plus the source's changed-block tracking. Frames
 * are validated before anything touches the clone's disks; any error fails the
 * stream and the caller discards the half-built clone.
 */
import type { DiskFrame__Output } from '../../../shared/src/gen/doppel/v1/DiskFrame.js';
import type { DiskCopyOpen__Output } from '../../../shared/src/gen/doppel/v1/DiskCopyOpen.js';
import type { DiskCopySummary } from '../../../shared/src/gen/doppel/v1/DiskCopySummary.js';
import { DISK_BATCH_BLOCKS, InvalidArgumentError, PageBatchDecoder, type Logger } from '../../../shared/src/mod.js';
import type { DriverVm } from '../drivers/driver.js';

export class DiskStreamReceiver {
  private open: DiskCopyOpen__Output | undefined;
  private vm: DriverVm | undefined;
  private decoders: PageBatchDecoder[] = [];
  private readonly changesSeen = new Set<number>();
  private blocksWritten = 0;
  private bytesWire = 0;
  private linked = false;

  constructor(
    /** Binds the stream to its clone; throws when there is none in the right state. */
    private readonly claim: (open: DiskCopyOpen__Output) => DriverVm,
    /** Overlays the shared datastore's frozen layers (linked clones). */
    private readonly link: (vm: DriverVm, chains: string[][]) => Promise<void>,
    private readonly log: Logger,
  ) {}

  get jobId(): string {
    return this.open?.jobId ?? '';
  }

  get targetVm(): DriverVm | undefined {
    return this.vm;
  }

  /** Frames are applied one at a time, in order: the caller awaits each before the next. */
  async onFrame(frame: DiskFrame__Output): Promise<void> {
    switch (frame.kind) {
      case 'open':
        return this.onOpen(frame.open!);
      case 'blocks': {
        const { vm, open } = this.requireOpen('disk blocks');
        if (this.linked) throw new InvalidArgumentError('disk blocks sent for a linked clone');
        const { disk, batch } = frame.blocks!;
        const decoder = this.decoders[disk];
        if (!decoder || !batch) throw new InvalidArgumentError(`disk blocks for disk ${disk}, which does not exist (${open.disks.length} disks)`);
        const d = decoder.decode(batch);
        this.bytesWire += batch.data.length;
        const bs = decoder.pageSize;
        // The clone's disks start blank, so zero blocks need no write. Contiguous blocks go in one write.
        let k = 0;
        while (k < d.dataPages.length) {
          let n = 1;
          while (k + n < d.dataPages.length && d.dataPages[k + n] === d.dataPages[k]! + n) n++;
          await vm.writeDiskBlocks(disk, d.dataPages[k]!, d.raw.subarray(k * bs, (k + n) * bs));
          k += n;
        }
        this.blocksWritten += d.dataPages.length + d.zeroPages.length;
        return;
      }
      case 'changes': {
        const { vm, open } = this.requireOpen('change tracking');
        const c = frame.changes!;
        const shape = open.disks[c.disk];
        if (!shape) throw new InvalidArgumentError(`change tracking for disk ${c.disk}, which does not exist`);
        if (this.changesSeen.has(c.disk)) throw new InvalidArgumentError(`change tracking for disk ${c.disk} sent twice`);
        this.changesSeen.add(c.disk);
        if (!c.tracked) return vm.inheritChanges(c.disk, null);
        const words = Math.ceil(Number(shape.sizeBytes) / shape.blockSize / 32);
        if (c.bitmap.length !== words * 4) {
          throw new InvalidArgumentError(`change bitmap of disk ${c.disk} has ${c.bitmap.length} bytes, expected ${words * 4}`);
        }
        const bitmap = new Uint32Array(words);
        Buffer.from(bitmap.buffer).set(c.bitmap);
        vm.inheritChanges(c.disk, { since: c.since, bitmap });
        return;
      }
      default:
        throw new InvalidArgumentError('empty or unknown disk frame');
    }
  }

  /** The source half-closed: every disk must have been described. */
  finish(): DiskCopySummary {
    const { open } = this.requireOpen('end of disk stream');
    if (this.changesSeen.size !== open.disks.length) {
      throw new InvalidArgumentError(`disk stream ended with change tracking for ${this.changesSeen.size} of ${open.disks.length} disks`);
    }
    return { blocksWritten: this.blocksWritten, bytesRaw: this.blocksWritten * (open.disks[0]?.blockSize ?? 0), bytesWire: this.bytesWire, linked: this.linked };
  }

  private async onOpen(open: DiskCopyOpen__Output): Promise<void> {
    if (this.open) throw new InvalidArgumentError('disk stream opened twice');
    const vm = this.claim(open);
    const disks = vm.disks();
    if (open.disks.length !== disks.length) {
      throw new InvalidArgumentError(`the source sends ${open.disks.length} disks; clone ${vm.id} has ${disks.length}`);
    }
    open.disks.forEach((shape, i) => {
      const mine = disks[i]!;
      if (shape.name !== mine.name || Number(shape.sizeBytes) !== mine.sizeBytes || shape.blockSize !== mine.blockSize) {
        throw new InvalidArgumentError(
          `disk ${i} is ${shape.name} (${shape.sizeBytes} bytes, blocks of ${shape.blockSize}); clone ${vm.id} has ${mine.name} (${mine.sizeBytes}, ${mine.blockSize})`,
        );
      }
    });
    this.vm = vm;
    this.open = open;
    this.decoders = disks.map((d) => new PageBatchDecoder(d.blockSize, d.blockCount, DISK_BATCH_BLOCKS));
    if (open.linked.length > 0) {
      if (open.linked.length !== disks.length) throw new InvalidArgumentError(`linked chains for ${open.linked.length} of ${disks.length} disks`);
      this.linked = true;
      await this.link(vm, open.linked.map((c) => c.layers));
      this.log.debug({ vm: vm.id, chains: open.linked }, 'clone disks linked to the shared datastore');
    }
  }

  private requireOpen(what: string): { vm: DriverVm; open: DiskCopyOpen__Output } {
    if (!this.open || !this.vm) throw new InvalidArgumentError(`${what} before the disk stream was opened`);
    return { vm: this.vm, open: this.open };
  }
}
