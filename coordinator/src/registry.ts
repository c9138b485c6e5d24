/**
 * The host registry, built from agent heartbeats and kept in NATS KV. A host is
 * up while its heartbeats arrive and down after three missed intervals or a
 * clean `stopping` heartbeat. The state is derived when read, so nothing in the
 * coordinator's memory is needed to answer.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  SUBJECTS,
  isValidName,
  decodeJson,
  encodeJson,
  publishEvent,
  type Heartbeat,
  type HostRecord,
  type KV,
  type Logger,
  type NatsConnection,
  type VmInfo,
  listKeys,
  BUCKETS,
} from '../../shared/src/mod.js';

interface StoredHost extends Heartbeat {
  receivedAt: number;
}

/** A host is down after this many heartbeat intervals without one. */
export const MISSED_HEARTBEATS = 3;

export class HostRegistry {
  private unsubscribe: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private readonly lastState = new Map<string, 'up' | 'down'>();

  constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    private readonly kv: KV,
    private readonly log: Logger,
  ) {}

  start(): void {
    const sub = this.nc.subscribe(SUBJECTS.heartbeatAll, {
      callback: (err, msg) => {
        if (err) return this.log.warn({ err }, 'heartbeat subscription error');
        let hb: Heartbeat;
        try {
          hb = decodeJson<Heartbeat>(msg.data);
        } catch (e) {
          return this.log.warn({ err: e, subject: msg.subject }, 'malformed heartbeat ignored');
        }
        // A host speaks only for itself: its NATS permissions allow only its own subject, and the
        // heartbeat must name that host (or one host could redirect clones meant for another).
        const subjectHost = msg.subject.slice(SUBJECTS.heartbeat('').length);
        if (typeof hb !== 'object' || hb === null || hb.name !== subjectHost || !isValidName(subjectHost)) {
          return this.log.warn({ subject: msg.subject, name: (hb as Partial<Heartbeat> | null)?.name }, 'heartbeat for another host ignored');
        }
        const stored: StoredHost = { ...hb, receivedAt: Date.now() };
        this.kv.put(hb.name, encodeJson(stored)).catch((e: unknown) => this.log.warn({ err: e }, 'could not store heartbeat'));
        this.noteState(hb.name, hb.status === 'up' ? 'up' : 'down');
      },
    });
    this.unsubscribe = () => sub.unsubscribe();
    this.sweepTimer = setInterval(() => void this.sweep(), 1000);
  }

  stop(): void {
    this.unsubscribe?.();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
  }

  private noteState(host: string, state: 'up' | 'down'): void {
    const prev = this.lastState.get(host);
    this.lastState.set(host, state);
    if (prev === state) return;
    if (prev === undefined && state === 'down') return;
    publishEvent(this.js, { type: state === 'up' ? 'host.up' : 'host.down', host, jobId: '', vm: '' }, 'coordinator').catch((err: unknown) =>
      this.log.warn({ err }, 'could not publish host event'),
    );
  }

  private async sweep(): Promise<void> {
    try {
      for (const h of await this.list()) if (h.state === 'down') this.noteState(h.name, 'down');
    } catch (err) {
      this.log.debug({ err }, 'host sweep failed');
    }
  }

  private static toRecord(s: StoredHost, now: number): HostRecord {
    const { receivedAt, ...hb } = s;
    const stale = now - receivedAt > MISSED_HEARTBEATS * hb.intervalMs;
    // A record an agent older than clusters left has none of their fields: it is in the default cluster.
    const older = { cluster: 'default', datastorePath: '', datastoreUsedMib: 0, datastoreFreeMib: 0, array: false };
    return { ...older, ...hb, state: hb.status === 'up' && !stale ? 'up' : 'down' };
  }

  async get(name: string): Promise<HostRecord | undefined> {
    const e = await this.kv.get(name);
    if (!e || e.operation !== 'PUT') return undefined;
    return HostRegistry.toRecord(e.json<StoredHost>(), Date.now());
  }

  async list(): Promise<HostRecord[]> {
    const hosts = await Promise.all((await listKeys(this.nc, BUCKETS.hosts)).sort().map((n) => this.get(n)));
    return hosts.filter((h): h is HostRecord => h !== undefined);
  }

  /** Finds a VM by id or name on any registered host (ids win over names). */
  async findVm(ref: string): Promise<{ vm: VmInfo; host: HostRecord } | undefined> {
    const hosts = await this.list();
    for (const byId of [true, false]) {
      for (const host of hosts) {
        const vm = host.vms.find((v) => (byId ? v.id === ref : v.name === ref));
        if (vm) return { vm, host };
      }
    }
    return undefined;
  }
}
