/**
 * Job records in NATS KV, and the tracker that folds agent events into them.
 * The tracker reads the events stream through a durable consumer: after a
 * coordinator restart it resumes where it stopped, so no job update is lost.
 */
import { AckPolicy, DeliverPolicy, jetstreamManager, type ConsumerMessages, type JetStreamClient } from '@nats-io/jetstream';
import {
  JOB_TRACKER_CONSUMER,
  NotFoundError,
  STREAMS,
  SUBJECTS,
  eventPublisher,
  decodeJson,
  encodeJson,
  type DoppelEvent,
  type HostRecord,
  type JobRecord,
  type KV,
  type Logger,
  type NatsConnection,
  sendCommand,
  listKeys,
  BUCKETS,
} from '../../shared/src/mod.js';
import type { Catalog } from './catalog.js';

export class JobStore {
  constructor(
    private readonly kv: KV,
    private readonly nc: NatsConnection,
  ) {}

  async create(job: JobRecord): Promise<void> {
    await this.kv.create(job.id, encodeJson(job));
  }

  async get(id: string): Promise<JobRecord> {
    const e = await this.kv.get(id);
    if (!e || e.operation !== 'PUT') throw new NotFoundError(`job '${id}' not found`);
    return e.json<JobRecord>();
  }

  async list(limit: number): Promise<JobRecord[]> {
    const ids = await listKeys(this.nc, BUCKETS.jobs);
    const jobs = await Promise.all(ids.map((id) => this.get(id).catch(() => undefined)));
    return jobs
      .filter((j): j is JobRecord => j !== undefined)
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .slice(0, limit);
  }

  /** Compare-and-swap update: re-reads and retries when another writer got there first. */
  async update(id: string, fn: (job: JobRecord) => JobRecord | undefined): Promise<JobRecord | undefined> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const e = await this.kv.get(id);
      if (!e || e.operation !== 'PUT') return undefined;
      const next = fn(e.json<JobRecord>());
      if (!next) return undefined;
      next.updatedAt = new Date().toISOString();
      try {
        await this.kv.update(id, encodeJson(next), e.revision);
        return next;
      } catch {
        // revision moved: someone else updated the job; try again on the new value
      }
    }
    throw new Error(`job '${id}': too many concurrent updates`);
  }
}

/** How one event changes a job. Terminal states are final. */
export function applyEvent(job: JobRecord, ev: DoppelEvent): JobRecord | undefined {
  if (job.state === 'completed' || job.state === 'failed') return undefined;
  const running = { ...job, state: 'running' as const };
  switch (ev.type) {
    case 'clone.started':
      return { ...running, phase: job.kind === 'hot-clone' ? 'freeze' : 'pre-copy', progress: 0 };
    case 'clone.round':
      return { ...running, phase: 'pre-copy', currentRound: ev.round, lastRoundPages: ev.pages };
    case 'clone.switchover':
      return { ...running, phase: 'disk-copy', lastRoundPages: ev.finalPages };
    case 'clone.disk-copied':
      return { ...running, phase: job.kind === 'backup' ? 'snapshot' : 'disk-copy', progress: 1 };
    case 'clone.completed':
      return { ...job, state: 'completed', phase: 'done', progress: 1, stats: ev.stats };
    case 'clone.frozen':
      return { ...running, phase: 'memory-copy', progress: 0 };
    case 'clone.memory-copied':
      return { ...running, phase: 'disk-copy', progress: 0.5 };
    case 'clone.hot-completed':
      return { ...job, state: 'completed', phase: 'done', progress: 1, hot: ev.hot };
    case 'backup.progress':
    case 'restore.progress':
      return { ...running, phase: ev.phase, progress: ev.progress };
    case 'backup.completed':
      return {
        ...job,
        state: 'completed',
        phase: 'done',
        progress: 1,
        stats: ev.backup.stats.clone ?? job.stats,
        backup: job.backup ? { ...job.backup, result: ev.backup } : null,
      };
    case 'restore.completed':
      return { ...job, state: 'completed', phase: 'done', progress: 1, restore: ev.restore };
    case 'clone.failed':
    case 'backup.failed':
    case 'restore.failed':
      return { ...job, state: 'failed', error: ev.error.message, errorName: ev.error.name };
    default:
      return undefined;
  }
}

/** A failed clone's target VM is incomplete or unverified: remove it (best effort; the target may be gone). */
export async function discardFailedClone(nc: NatsConnection, job: JobRecord, log: Logger): Promise<void> {
  if (job.state !== 'failed' || !job.plan.targetVm) return;
  await sendCommand(nc, job.plan.targetHost, 'vm.destroy', { vmId: job.plan.targetVm }, 5_000).catch((err: unknown) =>
    log.debug({ err, jobId: job.id }, 'clone of a failed job not removed (already gone, or its host is down)'),
  );
}

/**
 * The clone of a failed job whose host was down when the job failed outlives the failure (a host keeps its
 * VMs across a restart). Once that host is back and still lists the clone, it is removed.
 */
export async function reapFailedClones(nc: NatsConnection, store: JobStore, hosts: readonly HostRecord[], log: Logger): Promise<void> {
  for (const job of await store.list(10_000)) {
    if (job.state !== 'failed' || !job.plan.targetVm) continue;
    const host = hosts.find((h) => h.name === job.plan.targetHost);
    if (host?.state !== 'up' || !host.vms.some((v) => v.id === job.plan.targetVm)) continue;
    log.info({ jobId: job.id, host: host.name, vm: job.plan.targetVm }, 'removing the leftover clone of a failed job');
    await discardFailedClone(nc, job, log);
  }
}

/**
 * Jobs still pending or running whose source agent is gone are failed: nobody is left to finish them.
 * Gone means the host is down, or its agent restarted (a new start time) and so forgot the job.
 */
export async function failOrphanedJobs(
  nc: NatsConnection,
  store: JobStore,
  sourceOf: (host: string) => Promise<{ up: boolean; startedAt: string }>,
  log: Logger,
): Promise<void> {
  for (const job of await store.list(10_000)) {
    if (job.state !== 'pending' && job.state !== 'running') continue;
    const src = await sourceOf(job.plan.sourceHost);
    const restarted = job.plan.sourceAgentStartedAt !== '' && src.startedAt !== '' && src.startedAt !== job.plan.sourceAgentStartedAt;
    if (src.up && !restarted) continue;
    const message = restarted
      ? `the agent on source host '${job.plan.sourceHost}' restarted during the job`
      : `source host '${job.plan.sourceHost}' went down during the job`;
    const updated = await store.update(job.id, (j) =>
      j.state === 'pending' || j.state === 'running' ? { ...j, state: 'failed', error: message, errorName: 'UnavailableError' } : undefined,
    );
    if (updated) {
      log.warn({ jobId: job.id, host: job.plan.sourceHost }, `job failed: ${message}`);
      await discardFailedClone(nc, updated, log);
    }
  }
}

/** Events come from other processes: the fields the tracker reads must be there and of their types. */
function shapeProblem(ev: unknown): string | undefined {
  if (typeof ev !== 'object' || ev === null) return 'not an object';
  const e = ev as Record<string, unknown>;
  for (const k of ['type', 'host', 'jobId'] as const) if (typeof e[k] !== 'string') return `field '${k}' is not a string`;
  if (e.type === 'backup.completed') {
    const b = e.backup as Record<string, unknown> | null | undefined;
    if (typeof b !== 'object' || b === null || typeof b.id !== 'string' || typeof b.vm !== 'string' || typeof b.repository !== 'string') {
      return 'backup.completed without a backup record';
    }
  }
  return undefined;
}

export class JobTracker {
  private messages: ConsumerMessages | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly store: JobStore,
    private readonly catalog: Catalog,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const jsm = await jetstreamManager(this.nc);
    // Job events of every kind; host and VM events pass through unapplied (they carry no job id).
    const filter = SUBJECTS.eventsAll;
    const info = await jsm.consumers.info(STREAMS.events, JOB_TRACKER_CONSUMER).catch(() => undefined);
    if (info && info.config.filter_subject !== filter) {
      // An older coordinator followed clone events only. Replaying from the start is safe: applying an
      // event twice changes nothing, and terminal job states are final.
      await jsm.consumers.delete(STREAMS.events, JOB_TRACKER_CONSUMER);
    }
    if (!info || info.config.filter_subject !== filter) {
      await jsm.consumers.add(STREAMS.events, {
        durable_name: JOB_TRACKER_CONSUMER,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: filter,
        max_ack_pending: 1000,
      });
    }
    const consumer = await this.js.consumers.get(STREAMS.events, JOB_TRACKER_CONSUMER);
    const messages = await consumer.consume({ max_messages: 256 });
    this.messages = messages;
    this.loop = (async () => {
      for await (const m of messages) {
        try {
          let ev: DoppelEvent;
          try {
            ev = decodeJson<DoppelEvent>(m.data);
          } catch (err) {
            this.log.warn({ err, subject: m.subject }, 'malformed event dropped');
            m.term();
            continue;
          }
          const refusal = shapeProblem(ev) ?? (await this.refusal(m.subject, ev));
          if (refusal) {
            // Never redelivered: a refused event stays refused, and must not hold up the ones behind it.
            this.log.warn({ subject: m.subject, type: ev.type, jobId: ev.jobId }, `event dropped: ${refusal}`);
            m.term();
            continue;
          }
          // The catalog entry first: a job shows completed only once its backup is listed.
          if (ev.type === 'backup.completed') await this.catalog.put(ev.backup);
          const updated = ev.jobId ? await this.store.update(ev.jobId, (job) => applyEvent(job, ev)) : undefined;
          m.ack();
          if (updated?.state === 'failed') await discardFailedClone(this.nc, updated, this.log);
        } catch (err) {
          this.log.warn({ err, subject: m.subject }, 'event not applied; will be redelivered');
          m.nak(1000);
        }
      }
    })();
  }

  /**
   * Why an event must not be applied: an agent may speak only for itself (its subject names it and so
   * must the event) and only about jobs it takes part in. NATS permissions keep an agent on its own
   * subjects; this keeps it out of other hosts' jobs.
   */
  private async refusal(subject: string, ev: DoppelEvent): Promise<string | undefined> {
    const publisher = eventPublisher(subject);
    if (publisher === null) return undefined;
    if (ev.host !== publisher) return `published by host '${publisher}' but names host '${ev.host}'`;
    if (!/^(clone|backup|restore)\./.test(ev.type)) return undefined;
    if (!ev.jobId) return `a ${ev.type} event without a job`;
    let job: JobRecord;
    try {
      job = await this.store.get(ev.jobId);
    } catch (err) {
      if (err instanceof NotFoundError) return `job ${ev.jobId} does not exist`;
      throw err;
    }
    if (job.plan.sourceHost !== publisher && job.plan.targetHost !== publisher) return `host '${publisher}' takes no part in job ${ev.jobId}`;
    if (ev.type === 'backup.completed') {
      // The one event that writes the catalog: it must be the running backup job's own result, from its source.
      if (job.kind !== 'backup' || !job.backup) return `job ${ev.jobId} is no backup`;
      if (job.state !== 'pending' && job.state !== 'running') return `job ${ev.jobId} has already ended (${job.state})`;
      if (publisher !== job.plan.sourceHost) return `only the source host '${job.plan.sourceHost}' reports the backup of job ${ev.jobId}`;
      const b = ev.backup;
      if (b.id !== job.backup.backupId || b.vm !== job.vm || b.repository !== job.backup.repository) {
        return `the backup record (${b.id} of ${b.vm} in ${b.repository}) is not the one job ${ev.jobId} makes`;
      }
    }
    return undefined;
  }

  async stop(): Promise<void> {
    this.messages?.stop();
    await this.loop?.catch(() => undefined);
  }
}
