/**
 * Watches another agent's heartbeats, for a job that waits on that agent: the
 * wait ends as soon as the agent is gone (three missed heartbeats, a clean
 * stop, or a restart that forgot the work), not when a long deadline runs out.
 */
import type { NatsConnection } from '@nats-io/nats-core';
import { UnavailableError } from '../errors.js';
import { SUBJECTS } from '../protocol/subjects.js';
import type { Heartbeat } from '../protocol/types.js';
import { decodeJson } from './json.js';

export interface HostWatch {
  /** Rejects with UnavailableError once the host is gone; never resolves. */
  gone: Promise<never>;
  stop(): void;
}

export function watchHost(nc: NatsConnection, host: string, opts: { intervalMs: number; what: string }): HostWatch {
  let lastSeen = Date.now();
  let interval = opts.intervalMs;
  let startedAt = '';
  let reject!: (e: Error) => void;
  const gone = new Promise<never>((_, r) => (reject = r));
  gone.catch(() => undefined);
  const fail = (why: string) => reject(new UnavailableError(`host '${host}' ${why} during ${opts.what}`));
  const sub = nc.subscribe(SUBJECTS.heartbeat(host), {
    callback: (err, msg) => {
      if (err) return;
      const hb = decodeJson<Heartbeat>(msg.data);
      if (hb.status === 'stopping') return fail('stopped');
      if (startedAt && hb.startedAt !== startedAt) return fail('restarted (its agent forgot the work)');
      startedAt = hb.startedAt;
      interval = hb.intervalMs || interval;
      lastSeen = Date.now();
    },
  });
  const timer = setInterval(() => {
    if (Date.now() - lastSeen > 3 * interval + 250) fail(`went down (no heartbeat for ${Date.now() - lastSeen} ms)`);
  }, Math.max(100, Math.min(1000, interval / 2)));
  return {
    gone,
    stop: () => {
      clearInterval(timer);
      sub.unsubscribe();
    },
  };
}
