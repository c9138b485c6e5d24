/** JetStream resources doppel needs; idempotent, called by whoever starts first. */
import { jetstreamManager, jetstream, DiscardPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { BUCKETS, STREAMS, SUBJECTS } from '../protocol/subjects.js';

export type { KV } from '@nats-io/kv';

const DAY_NS = 24 * 3600 * 1e9;
export const JOB_RETENTION_MS = 30 * 24 * 3600 * 1000;

export async function ensureEventStream(nc: NatsConnection): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: STREAMS.events,
    subjects: [SUBJECTS.eventsAll],
    max_msgs: 200_000,
    max_bytes: 256 * 1024 * 1024,
    max_age: 7 * DAY_NS,
    discard: DiscardPolicy.Old,
  };
  try {
    await jsm.streams.info(STREAMS.events);
    await jsm.streams.update(STREAMS.events, config);
  } catch {
    await jsm.streams.add(config);
  }
}

export interface Buckets {
  hosts: KV;
  jobs: KV;
  links: KV;
}

export async function openBuckets(nc: NatsConnection): Promise<Buckets> {
  const kvm = new Kvm(nc);
  const [hosts, jobs, links] = await Promise.all([
    kvm.create(BUCKETS.hosts, { history: 1 }),
    // Job records are kept 30 days: a bounded history that still covers any report period of interest.
    kvm.create(BUCKETS.jobs, { history: 5, ttl: JOB_RETENTION_MS }),
    kvm.create(BUCKETS.links, { history: 1 }),
  ]);
  return { hosts, jobs, links };
}

export function jsClient(nc: NatsConnection): JetStreamClient {
  return jetstream(nc);
}

/**
 * KV keys, each once. `keys()` reads the bucket's stream, and a key that is
 * updated while the listing runs (a heartbeat) can come back twice.
 */
export async function uniqueKeys(kv: KV): Promise<string[]> {
  const keys = new Set<string>();
  for await (const k of await kv.keys()) keys.add(k);
  return [...keys];
}
