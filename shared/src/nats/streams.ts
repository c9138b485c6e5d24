/** JetStream resources doppel needs; idempotent, called by whoever starts first. */
import { jetstreamManager, jetstream, DiscardPolicy, type JetStreamClient } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/nats-core';
import { BUCKETS, STREAMS, SUBJECTS } from '../protocol/subjects.js';

export type { KV } from '@nats-io/kv';

const DAY_NS = 24 * 3600 * 1e9;
export const JOB_RETENTION_MS = 30 * 24 * 3600 * 1000;

/** `replicas`: copies kept by a JetStream cluster (3 on a three-node cluster; 1 on a single server). */
export async function ensureEventStream(nc: NatsConnection, replicas = 1): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const config = {
    name: STREAMS.events,
    num_replicas: replicas,
    subjects: [SUBJECTS.eventsAll],
    max_msgs: 200_000,
    max_bytes: 256 * 1024 * 1024,
    max_age: 7 * DAY_NS,
    discard: DiscardPolicy.Old,
  };
  try {
    const info = await jsm.streams.info(STREAMS.events);
    // An operator may have changed the replica count since (nats stream edit): keep theirs.
    await jsm.streams.update(STREAMS.events, { ...config, num_replicas: info.config.num_replicas });
  } catch {
    await jsm.streams.add(config);
  }
}

export interface Buckets {
  hosts: KV;
  jobs: KV;
  links: KV;
  backups: KV;
  snapshotMeta: KV;
  snapshots: KV;
  clusters: KV;
}

/** Opens (creating when missing) the buckets; `replicas` applies to buckets it creates. */
export async function openBuckets(nc: NatsConnection, replicas = 1): Promise<Buckets> {
  const kvm = new Kvm(nc);
  const [hosts, jobs, links, backups, snapshotMeta, snapshots, clusters] = await Promise.all([
    kvm.create(BUCKETS.hosts, { history: 1, replicas }),
    // Job records are kept 30 days: a bounded history that still covers any report period of interest.
    kvm.create(BUCKETS.jobs, { history: 5, ttl: JOB_RETENTION_MS, replicas }),
    kvm.create(BUCKETS.links, { history: 1, replicas }),
    // The catalog has no TTL: a backup stays listed as long as its manifest is kept.
    kvm.create(BUCKETS.backups, { history: 1, replicas }),
    kvm.create(BUCKETS.snapshotMeta, { history: 1, replicas }),
    kvm.create(BUCKETS.snapshots, { history: 1, replicas }),
    kvm.create(BUCKETS.clusters, { history: 5, replicas }),
  ]);
  return { hosts, jobs, links, backups, snapshotMeta, snapshots, clusters };
}

export function jsClient(nc: NatsConnection): JetStreamClient {
  return jetstream(nc);
}

/**
 * The keys of a KV bucket, each once, from one JetStream API request (stream info with a subject filter).
 * `kv.keys()` reads the bucket through a consumer instead: it returned keys twice while heartbeats updated
 * them, and a CI run saw a listing hang until the caller's 120 s deadline.
 */
export async function listKeys(nc: NatsConnection, bucket: string): Promise<string[]> {
  const jsm = await jetstreamManager(nc);
  const prefix = `$KV.${bucket}.`;
  const info = await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` });
  return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
}
