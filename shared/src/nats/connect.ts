import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { UnavailableError } from '../errors.js';

export type { NatsConnection } from '@nats-io/nats-core';

/** Connects with reconnects forever; a first connection that fails is a clear UNAVAILABLE. */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url.split(','), name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  } catch (err) {
    throw new UnavailableError(`cannot reach NATS at ${url}: ${(err as Error).message}`, { cause: err });
  }
}
