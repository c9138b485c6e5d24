/**
 * The target side of a pre-copy stream. It validates every frame before it
 * touches guest memory; any error fails the stream, and the caller discards the
 * half-built clone.
 */
import type { PageFrame__Output } from '../../../shared/src/gen/doppel/v1/PageFrame.js';
import type { StreamSummary } from '../../../shared/src/gen/doppel/v1/StreamSummary.js';
import type { StreamOpen__Output } from '../../../shared/src/gen/doppel/v1/StreamOpen.js';
import {
  DataCorruptionError,
  InvalidArgumentError,
  PAGE_SIZE,
  PageBatchDecoder,
  stateCrc,
  type Logger,
} from '../../../shared/src/mod.js';
import type { DriverVm, GuestPages } from '../drivers/driver.js';

/** 2^26 pages of 4 KiB = 256 GiB: the largest guest the data plane accepts. */
export const MAX_PAGE_COUNT = 2 ** 26;

export interface ReceiveTarget {
  /** Undefined for a probe: pages are verified and dropped. */
  vm: DriverVm | undefined;
}

export class PageStreamReceiver {
  private open: StreamOpen__Output | undefined;
  private decoder: PageBatchDecoder | undefined;
  private pages: GuestPages | undefined;
  private vm: DriverVm | undefined;
  private round = 0;
  private stateApplied = false;
  pagesApplied = 0;
  private bytesWire = 0;

  constructor(
    private readonly resolveTarget: (open: StreamOpen__Output) => ReceiveTarget,
    private readonly log: Logger,
  ) {}

  get jobId(): string {
    return this.open?.jobId ?? '';
  }

  get targetVm(): DriverVm | undefined {
    return this.vm;
  }

  onFrame(frame: PageFrame__Output): void {
    switch (frame.kind) {
      case 'open':
        return this.onOpen(frame.open!);
      case 'batch': {
        const b = frame.batch!;
        this.requireOpen('page batch');
        if (this.stateApplied) throw new InvalidArgumentError('page batch after the machine state');
        if (b.round < this.round) throw new InvalidArgumentError(`page batch of round ${b.round} after round ${this.round}`);
        this.round = b.round;
        const d = this.decoder!.decode(b);
        this.bytesWire += b.data.length;
        const pages = this.pages;
        if (pages) {
          for (const i of d.zeroPages) pages.zeroPage(i);
          const ps = pages.pageSize;
          d.dataPages.forEach((idx, k) => pages.writePage(idx, d.raw.subarray(k * ps, (k + 1) * ps)));
        }
        this.pagesApplied += d.zeroPages.length + d.dataPages.length;
        return;
      }
      case 'roundEnd':
        this.requireOpen('round end');
        this.log.debug({ round: frame.roundEnd!.round, pages: frame.roundEnd!.pages }, 'round received');
        return;
      case 'state': {
        const s = frame.state!;
        this.requireOpen('machine state');
        if (this.stateApplied) throw new InvalidArgumentError('machine state sent twice');
        if (stateCrc(s.vcpu, s.devices) !== s.crc32) throw new DataCorruptionError('machine state: checksum mismatch');
        this.vm?.loadState({ vcpu: s.vcpu, devices: s.devices });
        this.stateApplied = true;
        return;
      }
      default:
        throw new InvalidArgumentError('empty or unknown frame');
    }
  }

  /** Called when the source half-closes: the clone is complete only with its machine state. */
  finish(): StreamSummary {
    this.requireOpen('end of stream');
    if (!this.open!.probe && !this.stateApplied) {
      throw new InvalidArgumentError('stream ended before the machine state arrived; the clone is incomplete');
    }
    return {
      pagesApplied: this.pagesApplied,
      bytesRaw: this.pagesApplied * PAGE_SIZE,
      bytesWire: this.bytesWire,
      rounds: this.round + 1,
      stateApplied: this.stateApplied,
    };
  }

  private onOpen(open: StreamOpen__Output): void {
    if (this.open) throw new InvalidArgumentError('stream opened twice');
    if (open.pageSize !== PAGE_SIZE) throw new InvalidArgumentError(`page size ${open.pageSize} is not supported (only ${PAGE_SIZE})`);
    if (open.pageCount < 1 || open.pageCount > MAX_PAGE_COUNT) {
      throw new InvalidArgumentError(`page count ${open.pageCount} is out of range (1..${MAX_PAGE_COUNT})`);
    }
    const target = this.resolveTarget(open);
    if (target.vm) {
      const pages = target.vm.pages();
      if (pages.pageCount !== open.pageCount) {
        throw new InvalidArgumentError(
          `page count ${open.pageCount} does not match clone VM ${target.vm.id} (${pages.pageCount} pages)`,
        );
      }
      this.pages = pages;
      this.vm = target.vm;
    }
    this.open = open;
    this.decoder = new PageBatchDecoder(PAGE_SIZE, open.pageCount);
  }

  private requireOpen(what: string): void {
    if (!this.open) throw new InvalidArgumentError(`${what} before the stream was opened`);
  }
}
