import { connect } from '@nats-io/transport-node';
import type { NatsConnection } from '@nats-io/nats-core';
import { UnavailableError } from '../errors.js';

export type { NatsConnection } from '@nats-io/nats-core';

/** How a process authenticates to NATS: per-role user and password, TLS when the URL is tls://. */
export interface NatsAuth {
  user?: string;
  password?: string;
  tls?: { caFile: string; certFile?: string; keyFile?: string };
  /**
   * Reply subjects of this connection start with it. Agents use `_INBOX_<host>`, so their
   * NATS permissions can let them read their own replies and nobody else's.
   */
  inboxPrefix?: string;
}

/** The inbox prefix of an agent's NATS connection (its permissions allow exactly this one). */
export function agentInboxPrefix(host: string): string {
  return `_INBOX_${host}`;
}

/** Connects with reconnects forever; a first connection that fails is a clear UNAVAILABLE. */
export async function connectNats(url: string, name: string, auth: NatsAuth = {}): Promise<NatsConnection> {
  try {
    return await connect({
      servers: url.split(','),
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      ...(auth.user !== undefined ? { user: auth.user, pass: auth.password ?? '' } : {}),
      ...(auth.tls ? { tls: auth.tls } : {}),
      ...(auth.inboxPrefix ? { inboxPrefix: auth.inboxPrefix } : {}),
    });
  } catch (err) {
    throw new UnavailableError(`cannot reach NATS at ${url}${auth.user ? ` as '${auth.user}'` : ''}: ${(err as Error).message}`, { cause: err });
  }
}
