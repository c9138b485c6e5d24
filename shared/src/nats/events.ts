import type { JetStreamClient } from '@nats-io/jetstream';
import type { DoppelEvent } from '../protocol/types.js';
import { SUBJECTS } from '../protocol/subjects.js';
import { encodeJson } from './json.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type EventInput = DistributiveOmit<DoppelEvent, 'time'>;

/** Publishes an event into the JetStream events stream and waits for the store's ack. */
export async function publishEvent(js: JetStreamClient, event: EventInput): Promise<void> {
  const full = { ...event, time: new Date().toISOString() } as DoppelEvent;
  await js.publish(SUBJECTS.event(full.type), encodeJson(full), { timeout: 5_000 });
}
