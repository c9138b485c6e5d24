/**
 * The source side of a data-plane stream: a promise-shaped wrapper around a
 * grpc-js client stream that honours backpressure (a `write` that returns false
 * waits for `drain`) and turns the target's status into a typed error.
 */
import { credentials, type ClientWritableStream } from '@grpc/grpc-js';
import { once } from 'node:events';
import { fromServiceError, loadDataPlaneProto, AbortedError } from '../../../shared/src/mod.js';
import type { DataPlaneClient } from '../../../shared/src/gen/doppel/v1/DataPlane.js';
import type { PageFrame } from '../../../shared/src/gen/doppel/v1/PageFrame.js';
import type { StreamSummary__Output } from '../../../shared/src/gen/doppel/v1/StreamSummary.js';

export type { DataPlaneClient };

export function createDataPlaneClient(addr: string): DataPlaneClient {
  const proto = loadDataPlaneProto();
  return new proto.doppel.v1.DataPlane(addr, credentials.createInsecure(), {
    // The fault-injection path sends a frame over the receiver's limit on purpose;
    // the receiver, not the sender, enforces the limit.
    'grpc.max_send_message_length': 16 * 1024 * 1024,
    'grpc.max_receive_message_length': 1024 * 1024,
    'grpc.keepalive_time_ms': 30_000,
  });
}

export class PageStream {
  private readonly call: ClientWritableStream<PageFrame>;
  private readonly result: Promise<StreamSummary__Output>;
  private failure: Error | undefined;

  constructor(client: DataPlaneClient, target: string, deadlineMs: number) {
    let call!: ClientWritableStream<PageFrame>;
    this.result = new Promise<StreamSummary__Output>((resolve, reject) => {
      call = client.streamPages({ deadline: Date.now() + deadlineMs }, (err, value) => {
        if (err || !value) {
          this.failure = fromServiceError(err, `target ${target}`);
          reject(this.failure);
        } else resolve(value);
      });
    });
    this.result.catch(() => undefined);
    this.call = call;
  }

  /** Writes one frame; waits for `drain` when grpc-js asks for it. */
  async write(frame: PageFrame): Promise<void> {
    if (this.failure) throw this.failure;
    if (!this.call.write(frame)) {
      await Promise.race([once(this.call, 'drain'), this.result]);
    }
    if (this.failure) throw this.failure;
  }

  /** Half-closes the stream and waits for the target's summary. */
  async end(): Promise<StreamSummary__Output> {
    if (this.failure) throw this.failure;
    this.call.end();
    return this.result;
  }

  cancel(reason: string): void {
    if (!this.failure) this.failure = new AbortedError(reason);
    this.call.cancel();
  }
}
