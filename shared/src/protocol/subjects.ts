/** NATS subjects, KV buckets and stream names: the only place they are spelled. */

export const SUBJECTS = {
  /** Agents publish heartbeats here; the coordinator builds the host registry from them. */
  heartbeat: (host: string) => `doppel.hosts.heartbeat.${host}`,
  heartbeatAll: 'doppel.hosts.heartbeat.*',
  /** Request/reply commands from the coordinator to one agent. */
  agentCommand: (host: string) => `doppel.agent.${host}.cmd`,
  /**
   * Agent-to-agent requests (a backup's source asks the clone host to upload): the subject names the
   * sender, and an agent's NATS permissions let it publish only under its own name.
   */
  peerCommand: (host: string, from: string) => `doppel.agent.${host}.peer.${from}`,
  peerCommandsOf: (host: string) => `doppel.agent.${host}.peer.*`,
  /**
   * Events for alerting and job tracking, kept in the EVENTS stream. An agent publishes under its own
   * host (its NATS permissions allow nothing else), the coordinator under `coord`.
   */
  agentEvent: (host: string, type: string) => `doppel.events.host.${host}.${type}`,
  agentEventsOf: (host: string) => `doppel.events.host.${host}.>`,
  coordinatorEvent: (type: string) => `doppel.events.coord.${type}`,
  eventsAll: 'doppel.events.>',
} as const;

export const STREAMS = { events: 'DOPPEL_EVENTS' } as const;

export const BUCKETS = {
  hosts: 'doppel-hosts',
  jobs: 'doppel-jobs',
  links: 'doppel-links',
  /** The backup catalog: one entry per committed backup. */
  backups: 'doppel-backups',
  /** Metadata snapshots (seed 002): configuration, execution state, resource usage. Never on a host. */
  snapshotMeta: 'doppel-snapshot-meta',
  /** The snapshot catalog: one entry per storage snapshot, linking it to its metadata snapshot. */
  snapshots: 'doppel-snapshots',
  /** Cluster configurations (seed 003), by cluster name. */
  clusters: 'doppel-clusters',
} as const;

/** Durable consumer through which the coordinator folds events into job records. */
export const JOB_TRACKER_CONSUMER = 'doppel-job-tracker';

/** Host, VM and job names end up in subjects and KV keys: keep them to a safe alphabet. */
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;

/** The host an event subject says published it; null for the coordinator's events. */
export function eventPublisher(subject: string): string | null {
  const m = /^doppel\.events\.host\.([^.]+)\./.exec(subject);
  return m?.[1] ?? null;
}

export function isValidName(name: string): boolean {
  return NAME_RE.test(name);
}
