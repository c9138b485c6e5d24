/**
 * The source side of a data-plane stream: a promise-shaped wrapper around a
 * grpc-js duplex call that honours backpressure (a `write` that returns false
 * waits for `drain`), waits for the target's acknowledgements, and turns the
 * target's status into a typed error.
 */
import type { ClientDuplexStream } from '@grpc/grpc-js';
import {
  fromServiceError,
  loadDataPlaneProto,
  AbortedError,
  drainOrFailure,
  channelCredentials,
  streamTokenMetadata,
  type Transport,
} from '../../../shared/src/mod.js';
import type { DataPlaneClient } from '../../../shared/src/gen/doppel/v1/DataPlane.js';
import type { PageFrame } from '../../../shared/src/gen/doppel/v1/PageFrame.js';
import type { StreamSummary__Output } from '../../../shared/src/gen/doppel/v1/StreamSummary.js';
import type { StreamAck__Output } from '../../../shared/src/gen/doppel/v1/StreamAck.js';
import type { MigrationFrame } from '../../../shared/src/gen/doppel/v1/MigrationFrame.js';
import type { MigrationAck__Output } from '../../../shared/src/gen/doppel/v1/MigrationAck.js';
import type { MigrationSummary__Output } from '../../../shared/src/gen/doppel/v1/MigrationSummary.js';

export type { DataPlaneClient };

/** A client for the agent of host `host` at `addr`; under TLS that agent must present host's certificate. */
export function createDataPlaneClient(addr: string, host: string, transport: Transport): DataPlaneClient {
  const proto = loadDataPlaneProto();
  const { creds, options } = channelCredentials(transport, { name: host, role: 'agent' });
  return new proto.doppel.v1.DataPlane(addr, creds, {
    ...options,
    // The fault-injection path sends a frame over the receiver's limit on purpose;
    // the receiver, not the sender, enforces the limit.
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
  });
}

/**
 * A duplex data-plane call from the source's side: frames go out with backpressure, the target's messages come
 * back on the same call and are folded into the subclass's state by `onAck`; a failed call, or one the target ends
 * without a summary, fails every wait.
 */
abstract class AckedStream<Frame, Ack, Summary> {
  protected readonly call: ClientDuplexStream<Frame, Ack>;
  private failure: Error | undefined;
  protected summary: Summary | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly failureListeners = new Set<(err: Error) => void>();

  protected constructor(call: ClientDuplexStream<Frame, Ack>, target: string) {
    this.call = call;
    this.call.on('data', (ack: Ack) => {
      this.onAck(ack);
      this.wake();
    });
    this.call.on('error', (err) => this.setFailure(fromServiceError(err, `target ${target}`)));
    this.call.on('end', () => {
      if (this.summary === undefined) this.setFailure(new AbortedError(`target ${target} ended the stream without a summary`));
      this.wake();
    });
  }

  /** Takes one message from the target. */
  protected abstract onAck(ack: Ack): void;

  private setFailure(err: Error): void {
    if (!this.failure) {
      this.failure = err;
      for (const l of this.failureListeners) l(err);
    }
    this.wake();
  }

  /** Calls `listener` once, when the call fails (for aborting work that waits on something else). */
  onFailure(listener: (err: Error) => void): void {
    if (this.failure) listener(this.failure);
    else this.failureListeners.add(listener);
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `done()` holds; rejects as soon as the call fails. */
  protected until(done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.failure) {
          this.waiters.delete(check);
          reject(this.failure);
        } else if (done()) {
          this.waiters.delete(check);
          resolve();
        }
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Writes one frame; waits for `drain` when grpc-js asks for it. */
  async write(frame: Frame): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.call.write(frame)) {
      await drainOrFailure(this.call, this.waiters, () => this.failure);
    }
    if (this.failure) throw this.failure;
  }

  /** Half-closes the stream and waits for the target's summary. */
  async end(): Promise<Summary> {
    if (this.failure) throw this.failure;
    this.call.end();
    await this.until(() => this.summary !== undefined);
    return this.summary!;
  }

  cancel(reason: string): void {
    this.setFailure(new AbortedError(reason));
    this.call.cancel();
  }
}

/**
 * One page stream to a target. The target's acknowledgements come back one per applied round, then the summary
 * once the source half-closes.
 */
export class PageStream extends AckedStream<PageFrame, StreamAck__Output, StreamSummary__Output> {
  private ackedRound = -1;

  constructor(client: DataPlaneClient, target: string, deadlineMs: number, token: string) {
    super(client.streamPages(streamTokenMetadata(token), { deadline: Date.now() + deadlineMs }), target);
  }

  protected onAck(ack: StreamAck__Output): void {
    if (ack.summary) this.summary = ack.summary;
    else this.ackedRound = Math.max(this.ackedRound, ack.round);
  }

  /** Waits until the target has applied every page of `round`. */
  acked(round: number): Promise<void> {
    return this.until(() => this.ackedRound >= round);
  }
}

/**
 * One QEMU migration stream to a target (the qemu driver's live clone): relay frames out, the target's progress
 * back, and its summary once the clone's QEMU has taken the whole migration.
 */
export class MigrationStream extends AckedStream<MigrationFrame, MigrationAck__Output, MigrationSummary__Output> {
  /** Frames the target has handed to its QEMU. */
  framesAcked = 0;

  constructor(client: DataPlaneClient, target: string, deadlineMs: number, token: string) {
    super(client.streamMigration(streamTokenMetadata(token), { deadline: Date.now() + deadlineMs }), target);
  }

  protected onAck(ack: MigrationAck__Output): void {
    this.framesAcked = Math.max(this.framesAcked, ack.frames);
    if (ack.summary) this.summary = ack.summary;
  }
}
