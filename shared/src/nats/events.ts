import type { JetStreamClient } from '@nats-io/jetstream';
import type { DoppelEvent } from '../protocol/types.js';
import { SUBJECTS } from '../protocol/subjects.js';
import { encodeJson } from './json.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type EventInput = DistributiveOmit<DoppelEvent, 'time'>;

/**
 * Publishes an event into the JetStream events stream and waits for the store's ack. An agent's
 * events go under its own host's subject (`event.host`); the coordinator's under its own.
 */
export async function publishEvent(js: JetStreamClient, event: EventInput, from: 'agent' | 'coordinator' = 'agent'): Promise<void> {
  const full = { ...event, time: new Date().toISOString() } as DoppelEvent;
  const subject = from === 'agent' ? SUBJECTS.agentEvent(full.host, full.type) : SUBJECTS.coordinatorEvent(full.type);
  await js.publish(subject, encodeJson(full), { timeout: 5_000 });
}
