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
 * One page stream to a target. Frames go out with backpressure; the target's
 * acknowledgements come back on the same call: one per applied round, then the
 * summary once the source half-closes.
 */
export class PageStream {
  private readonly call: ClientDuplexStream<PageFrame, StreamAck__Output>;
  private failure: Error | undefined;
  private ackedRound = -1;
  private summary: StreamSummary__Output | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(client: DataPlaneClient, target: string, deadlineMs: number, token: string) {
    this.call = client.streamPages(streamTokenMetadata(token), { deadline: Date.now() + deadlineMs });
    this.call.on('data', (ack: StreamAck__Output) => {
      if (ack.summary) this.summary = ack.summary;
      else this.ackedRound = Math.max(this.ackedRound, ack.round);
      this.wake();
    });
    this.call.on('error', (err) => {
      this.failure ??= fromServiceError(err, `target ${target}`);
      this.wake();
    });
    this.call.on('end', () => {
      if (!this.summary) this.failure ??= new AbortedError(`target ${target} ended the stream without a summary`);
      this.wake();
    });
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Resolves when `done()` holds; rejects as soon as the call fails. */
  private until(done: () => boolean): Promise<void> {
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
  async write(frame: PageFrame): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.call.write(frame)) {
      await drainOrFailure(this.call, this.waiters, () => this.failure);
    }
    if (this.failure) throw this.failure;
  }

  /** Waits until the target has applied every page of `round`. */
  acked(round: number): Promise<void> {
    return this.until(() => this.ackedRound >= round);
  }

  /** Half-closes the stream and waits for the target's summary. */
  async end(): Promise<StreamSummary__Output> {
    if (this.failure) throw this.failure;
    this.call.end();
    await this.until(() => this.summary !== undefined);
    return this.summary!;
  }

  cancel(reason: string): void {
    this.failure ??= new AbortedError(reason);
    this.call.cancel();
    this.wake();
  }
}
