/**
 * How an agent job reports: progress events are fire-and-forget, so a slow
 * store never stalls a data stream; result events are retried, because the
 * coordinator's job record (and the backup catalog) depend on them.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { publishEvent, type EventInput, type Logger } from '../../shared/src/mod.js';

export interface JobEvents {
  emit(e: EventInput): void;
  result(e: EventInput): Promise<void>;
}

export function jobEvents(js: JetStreamClient, log: Logger): JobEvents {
  return {
    emit: (e) => void publishEvent(js, e).catch((err: unknown) => log.warn({ err, type: e.type }, 'could not publish event')),
    result: async (e) => {
      for (let attempt = 1; ; attempt++) {
        try {
          await publishEvent(js, e);
          return;
        } catch (err) {
          if (attempt >= 8) return log.error({ err, type: e.type }, 'result event lost after 8 attempts');
          await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
        }
      }
    },
  };
}
