/**
 * The coordinator's API, independent of transport: the gRPC server and the
 * HTTP/JSON server both call these methods, so they validate and behave alike.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import {
  DataCorruptionError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  ResourceExhaustedError,
  STREAMS,
  UnavailableError,
  decodeJson,
  encodeJson,
  newId,
  publishEvent,
  requireInt,
  requireName,
  requireOneOf,
  sendCommand,
  validateVmSpec,
  type DoppelEvent,
  type HostRecord,
  type JobRecord,
  type KV,
  type Logger,
  type NatsConnection,
  type VmInfo,
  type VmSpecInput,
  type VmStorage,
  AlreadyExistsError,
  RepositoryClient,
  type AgentCommands,
  type BackupJobInfo,
  type BackupRecord,
  type ClonePlan,
  type CloneStartArgs,
  type JobKind,
  type CloneStreamTokens,
  type StreamTokenSigner,
  type Transport,
  type VmIdentity,
  hostnameFromName,
  newIdentity,
  requireHostname,
  openSaveSet,
  parseMaps,
  planRestore,
  type ClusterConfig,
  type ClusterView,
  type RestorePlan,
  type SaveSet,
  type VmSpec,
} from '../../shared/src/mod.js';
import type { Catalog } from './catalog.js';
import { verifyInRepository, type VerifyReport } from './verify.js';
import { SnapshotService } from './snapshots.js';
import { HostRegistry } from './registry.js';
import { JobStore } from './jobs.js';
import { pickHost, predict, roomProblem } from './planner.js';
import { HOT_BUFFER_BYTES, planHotClone } from './hot-clone.js';
import { IdentityAllocator } from './identities.js';
import type { ClusterStore } from './clusters.js';

export interface CloneRequest {
  vm: string;
  targetHost?: string;
  maxDowntimeMs?: number;
  onNonConvergence?: string;
  maxRounds?: number;
  verify?: boolean;
  cloneName?: string;
  fault?: string;
  maxBandwidthMbps?: number;
  /** The clone's hostname (default: the clone's name). */
  hostname?: string;
  /** A hot clone (seed 004): the source is never suspended. */
  hot?: boolean;
  /** With hot: copy the disks in full to a target that does not share the source's datastore. */
  copyDisks?: boolean;
}

/** A new VM; its identity is made here: `hostname` (default: the name) and `mac` (default: a new one unique in the fleet). */
export type CreateVmRequest = VmSpecInput & { host?: string; hostname?: string; mac?: string; /** The API's form of `nics`: a NIC on each. */ networks?: string[] };

export interface BackupRequest {
  vm: string;
  direct?: boolean;
  incremental?: boolean;
  keepClone?: boolean;
  cloneHost?: string;
  maxDowntimeMs?: number;
  onNonConvergence?: string;
  maxBandwidthMbps?: number;
  cloneSettleMs?: number;
  /** Tests only (the agent must allow fault injection): a bypass-mode backup skips its revert to t1. */
  skipRevert?: boolean;
}

export interface RestoreRequest {
  backup: string;
  /** A host; with toCluster, one of that cluster's. One of the two is required. */
  toHost?: string;
  /** A cluster (seed 003): the plan picks the datastore, and a host that mounts it. */
  toCluster?: string;
  /** Overrides of the plan's rules: `net:A=B`, `store:X=Y`, `cpu:X=Y`. */
  maps?: string[];
  asName?: string;
  start?: boolean;
}

/** A cluster to register (`doppel cluster add`). */
export type AddClusterRequest = Partial<ClusterConfig> & { replace?: boolean };

interface PlannedClone {
  job: JobRecord;
  vm: VmInfo;
  source: HostRecord;
  target: HostRecord;
  cloneName: string;
  /** The clone's hostname as asked (checked in prepareClone); default: the clone's name. */
  hostname?: string;
  capBytesPerS: number;
  linked: boolean;
  verify: boolean;
  fault: string;
}

/** A restore names a host or a cluster (or both, the host in the cluster). */
function requireDestination(req: RestoreRequest): void {
  if (!req.toHost && !req.toCluster) throw new InvalidArgumentError('a restore needs a destination: a host (--to HOST) or a cluster (--to-cluster NAME)');
}

/** An optional list of strings from a request (JSON bodies are not typed). */
function requireStrings(field: string, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw new InvalidArgumentError(`${field} must be a list of strings (got ${JSON.stringify(v)})`);
  return v as string[];
}

/**
 * A new VM's configuration checked against its host's cluster: its NICs' networks exist, its CPU model is offered
 * (default: the cluster's first) and its memory is within the cluster's limit.
 */
function fitToCluster(spec: VmSpec, view: ClusterView): VmSpec {
  const c = view.config;
  const problems: string[] = [];
  for (const [i, n] of (spec.nics ?? []).entries()) {
    if (!c.networks.some((x) => x.name === n.network)) {
      problems.push(`nic${i}: cluster '${c.name}' has no network '${n.network}' (it has: ${c.networks.map((x) => x.name).join(', ') || 'none'})`);
    }
  }
  const cpuModel = spec.cpuModel || c.cpuModels[0] || '';
  if (!c.cpuModels.includes(cpuModel)) problems.push(`cluster '${c.name}' does not offer CPU model '${cpuModel}' (it offers: ${c.cpuModels.join(', ')})`);
  if (c.maxVmMemoryMib > 0 && spec.memoryMib > c.maxVmMemoryMib) {
    problems.push(`${spec.memoryMib} MiB of memory is more than cluster '${c.name}' allows a VM (${c.maxVmMemoryMib} MiB)`);
  }
  if (problems.length > 0) throw new FailedPreconditionError(`vm '${spec.name}' does not fit cluster '${c.name}': ${problems.join('; ')}`);
  return { ...spec, cpuModel };
}

/** A new job record, pending; `plan` fills in what is known of the route. */
function newJob(kind: JobKind, vm: { id: string }, source: HostRecord, plan: Partial<ClonePlan>): JobRecord {
  const now = new Date().toISOString();
  return {
    id: newId('job'),
    kind,
    state: 'pending',
    vm: vm.id,
    createdAt: now,
    updatedAt: now,
    plan: {
      sourceHost: source.name,
      targetHost: '',
      sourceVm: vm.id,
      targetVm: '',
      bandwidthBytesPerS: 0,
      dirtyPagesPerS: 0,
      thresholdPages: 0,
      maxDowntimeMs: 0,
      maxRounds: 0,
      predictedConverges: false,
      predictedRounds: 0,
      predictedDowntimeMs: 0,
      warning: '',
      sourceAgentStartedAt: source.startedAt,
      ...plan,
    },
    stats: null,
    hot: null,
    error: '',
    errorName: '',
    currentRound: 0,
    lastRoundPages: 0,
    backup: null,
    restore: null,
    phase: '',
    progress: 0,
  };
}

export interface StoredEvent {
  seq: number;
  event: DoppelEvent;
}

export const CLONE_DEFAULTS = { maxDowntimeMs: 300, maxRounds: 30, onNonConvergence: 'refuse' } as const;
const PROBE_BYTES = 32 * 1024 * 1024;
/** The agent's probe streams min(bytes, 8 MiB) first to warm up (agent/src/precopy/probe.ts). */
const PROBE_WARMUP_BYTES = 8 * 1024 * 1024;
const LINK_CACHE_MS = 60_000;
/** 200,000 chunks of 4 MiB (781 GiB): a commit carries every index in one 8 MiB message (34 bytes per chunk). */
const MAX_BACKUP_CHUNKS = 200_000;
const DIRTY_WINDOW_MS = 250;

export interface ServiceDeps {
  nc: NatsConnection;
  js: JetStreamClient;
  registry: HostRegistry;
  jobs: JobStore;
  links: KV;
  catalog: Catalog;
  /** The backup repository's gRPC address, as agents reach it. */
  repository: string;
  log: Logger;
  /** The coordinator's own transport (to the repository). */
  transport: Transport;
  /** Signs one token per data-plane stream. */
  tokens: StreamTokenSigner;
  /** Metadata snapshots and the snapshot catalog. */
  snapshotMeta: KV;
  snapshotCatalog: KV;
  clusters: ClusterStore;
}

export class CoordinatorService {
  /** Ends every event watch (on shutdown, so open follow streams do not hold the server). */
  private readonly watches = new AbortController();

  readonly snapshots: SnapshotService;

  /** New VM identities with MACs unique in the fleet. */
  private readonly identities = new IdentityAllocator(() => this.d.registry.list());

  constructor(private readonly d: ServiceDeps) {
    this.snapshots = new SnapshotService({
      nc: d.nc,
      js: d.js,
      registry: d.registry,
      meta: d.snapshotMeta,
      catalog: d.snapshotCatalog,
      locate: (vm) => this.locate(vm),
      log: d.log.child({ component: 'snapshots' }),
    });
  }

  stopWatches(): void {
    this.watches.abort();
  }

  listHosts(): Promise<HostRecord[]> {
    return this.d.registry.list();
  }

  async listVms(host?: string): Promise<VmInfo[]> {
    const hosts = await this.d.registry.list();
    return hosts.filter((h) => !host || h.name === host).flatMap((h) => h.vms);
  }

  private async upHost(name: string, role: string): Promise<HostRecord> {
    const h = await this.d.registry.get(requireName(`${role} host`, name));
    if (!h) throw new NotFoundError(`${role} host '${name}' is not registered`);
    if (h.state !== 'up') throw new UnavailableError(`${role} host '${name}' is down (no heartbeat since ${h.sentAt})`);
    return h;
  }

  async createVm(req: CreateVmRequest): Promise<VmInfo> {
    const { networks, ...rest } = req;
    const nics = rest.nics?.length ? rest.nics : requireStrings('networks', networks).map((network) => ({ network }));
    const spec = validateVmSpec({ ...rest, nics, vcpus: req.vcpus || 1, identity: null });
    const hostname = req.hostname ? requireHostname(req.hostname) : hostnameFromName(spec.name);
    if (await this.d.registry.findVm(spec.name)) throw new InvalidArgumentError(`a VM named '${spec.name}' already exists`);
    const host = req.host ? await this.upHost(req.host, 'target') : pickHost(await this.d.registry.list(), spec.memoryMib, '');
    const fitted = fitToCluster(spec, await this.d.clusters.viewOf(host));
    const identity: VmIdentity = req.mac
      ? { ...newIdentity(hostname), mac: await this.identities.claim(req.mac, spec.name) }
      : await this.identities.allocate(spec.name, hostname);
    try {
      return await sendCommand(this.d.nc, host.name, 'vm.create', { ...fitted, identity }, 60_000);
    } catch (err) {
      this.identities.release(identity.mac, err);
      throw err;
    }
  }

  private async locate(ref: string): Promise<{ vm: VmInfo; host: HostRecord }> {
    if (!ref) throw new InvalidArgumentError('vm is required (an id or a name)');
    const found = await this.d.registry.findVm(ref);
    if (!found) throw new NotFoundError(`vm '${ref}' not found on any registered host`);
    if (found.host.state !== 'up') throw new UnavailableError(`vm '${ref}' is on host '${found.host.name}', which is down`);
    return found;
  }

  async runVm(ref: string): Promise<VmInfo> {
    const { vm, host } = await this.locate(ref);
    // Two running NICs with one MAC take each other's traffic. (An agent older than identities reports none.)
    const mac = (vm.identity as VmIdentity | undefined)?.mac;
    const other = vm.state !== 'running' && mac ? await this.identities.runningWithMac(mac, vm.id) : undefined;
    if (other) {
      throw new FailedPreconditionError(
        `vm '${vm.name}' has MAC address ${mac}, which vm '${other.vm.name}' (${other.vm.id}) already uses, running on host '${other.host.name}'; stop or destroy that VM first`,
      );
    }
    return sendCommand(this.d.nc, host.name, 'vm.run', { vmId: vm.id });
  }

  /** qemu driver: a QEMU started outside doppel, taken under its host agent's care by its QMP socket. */
  async adoptVm(req: { host: string; qmpSocket: string; name: string }): Promise<VmInfo> {
    const name = requireName('vm name', req.name);
    if (!req.qmpSocket || !req.qmpSocket.startsWith('/')) throw new InvalidArgumentError(`the QMP socket must be an absolute path on the host (got '${req.qmpSocket}')`);
    if (await this.d.registry.findVm(name)) throw new InvalidArgumentError(`a VM named '${name}' already exists`);
    const host = await this.upHost(requireName('host', req.host), 'target');
    if (host.driver !== 'qemu') throw new FailedPreconditionError(`host '${host.name}' runs the ${host.driver} driver; only a qemu agent can adopt a QEMU`);
    return sendCommand(this.d.nc, host.name, 'vm.adopt', { qmpSocket: req.qmpSocket, name }, 60_000);
  }

  /** What the VM's disks hold on its host's datastore: its own overlays and the shared bases it reads. */
  async vmStorage(ref: string): Promise<VmStorage> {
    const { vm, host } = await this.locate(ref);
    return sendCommand(this.d.nc, host.name, 'vm.storage', { vmId: vm.id });
  }

  async destroyVm(ref: string): Promise<{ destroyed: boolean }> {
    const { vm, host } = await this.locate(ref);
    return sendCommand(this.d.nc, host.name, 'vm.destroy', { vmId: vm.id });
  }

  /** Measured page bandwidth from one host to another (cached briefly in KV). */
  private async bandwidth(src: HostRecord, dst: HostRecord, capBytesPerS: number): Promise<number> {
    const key = `${src.name}--${dst.name}`;
    if (capBytesPerS === 0) {
      const cached = await this.d.links.get(key);
      if (cached?.operation === 'PUT') {
        const v = cached.json<{ bytesPerSecond: number; at: number }>();
        if (Date.now() - v.at < LINK_CACHE_MS) return v.bytesPerSecond;
      }
    }
    // Under a cap the probe lasts about two seconds, and the command's timeout follows its length.
    const bytes = capBytesPerS > 0 ? Math.max(1024 * 1024, Math.min(PROBE_BYTES, capBytesPerS * 2)) : PROBE_BYTES;
    const expectedMs = capBytesPerS > 0 ? ((bytes + PROBE_WARMUP_BYTES) / capBytesPerS) * 1000 : 0;
    const { bytesPerSecond } = await sendCommand(
      this.d.nc,
      src.name,
      'link.probe',
      {
        targetHost: dst.name,
        targetAddr: dst.dataAddr,
        bytes,
        maxBandwidthBytesPerS: capBytesPerS,
        // Two streams: the warm-up and the measured one. A probe writes nothing on the target.
        tokens: [0, 1].map(() => this.d.tokens.sign({ job: 'probe', vm: '', src: src.name, dst: dst.name, dir: 'probe' })),
      },
      15_000 + 2 * expectedMs,
    );
    if (capBytesPerS === 0) await this.d.links.put(key, encodeJson({ bytesPerSecond, at: Date.now() }));
    return bytesPerSecond;
  }

  /** The target host a clone request names: up, not the source's host, with room for the VM. */
  private async namedTarget(name: string, source: HostRecord, vm: VmInfo, what: string): Promise<HostRecord> {
    const target = await this.upHost(name, 'target');
    if (target.name === source.name) throw new InvalidArgumentError(`target host '${target.name}' is the source's host; ${what} goes to a second host`);
    const problem = roomProblem(target, vm.memoryMib);
    if (problem) throw new ResourceExhaustedError(problem);
    return target;
  }

  /**
   * Plans a live clone: validates the request, picks the target, measures the link and the dirty rate,
   * predicts convergence and applies the refuse/warn policy. Nothing is created yet.
   */
  private async planClone(req: CloneRequest, kind: JobKind): Promise<PlannedClone> {
    const maxDowntimeMs = requireInt('max downtime (ms)', req.maxDowntimeMs || CLONE_DEFAULTS.maxDowntimeMs, 10, 600_000);
    const maxRounds = requireInt('max rounds', req.maxRounds || CLONE_DEFAULTS.maxRounds, 1, 1000);
    const policy = requireOneOf('on-non-convergence policy', req.onNonConvergence || CLONE_DEFAULTS.onNonConvergence, ['refuse', 'warn']);
    const capMbps = requireInt('max bandwidth (MB/s)', req.maxBandwidthMbps ?? 0, 0, 1_000_000);
    const { vm, host: source } = await this.locate(req.vm);
    if (req.verify && source.driver === 'qemu') {
      throw new FailedPreconditionError(
        `--verify compares memory hashes, which the qemu driver cannot take (QEMU keeps guest memory to itself); ` +
          `its migration stream is checked frame by frame (CRC and sequence) and by QEMU: clone without --verify`,
      );
    }
    let target: HostRecord;
    if (req.targetHost) {
      target = await this.namedTarget(req.targetHost, source, vm, 'a live clone');
    } else {
      target = pickHost(await this.d.registry.list(), vm.memoryMib, source.name);
    }
    const cloneName = requireName('clone name', req.cloneName || `${vm.name.slice(0, 40)}-clone-${newId('x').slice(-6)}`);
    const hostname = req.hostname ? requireHostname(req.hostname) : hostnameFromName(cloneName);

    const capBytesPerS = capMbps * 1e6;
    const [bandwidthBytesPerS, dirty] = await Promise.all([
      this.bandwidth(source, target, capBytesPerS),
      sendCommand(this.d.nc, source.name, 'vm.dirty-rate', { vmId: vm.id, windowMs: DIRTY_WINDOW_MS }),
    ]);
    const p = predict({ pageCount: dirty.pageCount, bandwidthBytesPerS, dirtyPagesPerS: dirty.pagesPerSecond, maxDowntimeMs, maxRounds });
    const numbers =
      `dirty rate ${Math.round(dirty.pagesPerSecond)} pages/s vs bandwidth ${Math.round(bandwidthBytesPerS / 4096)} pages/s ` +
      `(${(bandwidthBytesPerS / 1e6).toFixed(0)} MB/s); threshold ${p.thresholdPages} pages for ${maxDowntimeMs} ms`;
    let warning = '';
    if (!p.converges) {
      const msg = `pre-copy of vm '${vm.name}' is not predicted to converge (${p.stopReason} after ${p.rounds} rounds): ${numbers}`;
      if (policy === 'refuse') {
        throw new FailedPreconditionError(
          `${msg}. Lower the guest's dirty rate, raise --max-downtime-ms, or pass --on-non-convergence warn to clone anyway`,
        );
      }
      warning = `${msg}; cloning anyway (policy warn): the switchover will exceed ${maxDowntimeMs} ms`;
    }
    const job = newJob(kind, vm, source, {
      targetHost: target.name,
      bandwidthBytesPerS,
      dirtyPagesPerS: dirty.pagesPerSecond,
      thresholdPages: p.thresholdPages,
      maxDowntimeMs,
      maxRounds,
      predictedConverges: p.converges,
      predictedRounds: p.rounds,
      predictedDowntimeMs: p.downtimeMs,
      warning,
    });
    const linked = source.datastore !== '' && source.datastore === target.datastore;
    return { job, vm, source, target, cloneName, hostname, capBytesPerS, linked, verify: req.verify === true, fault: req.fault ?? '' };
  }

  /** Stores the job and has the target create the clone VM, suspended. */
  private async prepareClone(pc: PlannedClone): Promise<CloneStartArgs> {
    const { job, vm, source, target } = pc;
    const log = this.d.log.child({ jobId: job.id, vm: vm.id });
    const hostname = pc.hostname ? requireHostname(pc.hostname) : hostnameFromName(pc.cloneName);
    if (job.plan.warning) log.warn(job.plan.warning);
    await this.d.jobs.create(job);
    let clone: VmInfo;
    let identity: VmIdentity | undefined;
    try {
      // The clone is another machine on the network: a new UUID, MAC and machine id; the source keeps its own.
      identity = await this.identities.allocate(pc.cloneName, hostname);
      clone = await sendCommand(this.d.nc, target.name, 'clone.prepare', { jobId: job.id, source: vm, name: pc.cloneName, identity });
    } catch (err) {
      if (identity) this.identities.release(identity.mac, err);
      await this.failJob(job.id, err);
      throw err;
    }
    job.plan.targetVm = clone.id;
    await this.d.jobs.update(job.id, (j) => ({ ...j, plan: { ...j.plan, targetVm: clone.id } }));
    await publishEvent(this.d.js, { type: 'clone.started', host: source.name, jobId: job.id, vm: vm.id, plan: job.plan }, 'coordinator');
    return {
      jobId: job.id,
      vmId: vm.id,
      targetHost: target.name,
      targetAddr: target.dataAddr,
      targetVmId: clone.id,
      thresholdPages: job.plan.thresholdPages,
      maxRounds: job.plan.maxRounds,
      verify: pc.verify,
      fault: pc.fault,
      maxBandwidthBytesPerS: pc.capBytesPerS,
      linked: pc.linked,
      tokens: this.cloneTokens(job.id, clone.id, source.name, target.name),
    };
  }

  /** One token per data-plane call of a clone, each bound to the job, the clone VM, both hosts and its direction. */
  private cloneTokens(job: string, vm: string, src: string, dst: string): CloneStreamTokens {
    const sign = (dir: 'pages' | 'disk' | 'verify') => this.d.tokens.sign({ job, vm, src, dst, dir });
    return { pages: sign('pages'), disk: sign('disk'), verify: sign('verify') };
  }

  /** Hands a prepared job to its source agent; on refusal the clone VM goes and the job fails. */
  private async startOnSource<Op extends 'clone.start' | 'hotclone.start' | 'backup.start'>(
    job: JobRecord,
    op: Op,
    args: AgentCommands[Op]['args'],
  ): Promise<JobRecord> {
    try {
      await sendCommand(this.d.nc, job.plan.sourceHost, op, args);
    } catch (err) {
      if (job.plan.targetVm) {
        await sendCommand(this.d.nc, job.plan.targetHost, 'vm.destroy', { vmId: job.plan.targetVm }).catch(() => undefined);
      }
      await this.failJob(job.id, err);
      throw err;
    }
    this.d.log.info({ jobId: job.id, kind: job.kind, source: job.plan.sourceHost, target: job.plan.targetHost }, `${job.kind} started`);
    return this.d.jobs.get(job.id);
  }

  async cloneVm(req: CloneRequest): Promise<JobRecord> {
    if (req.hot) return this.hotCloneVm(req);
    const pc = await this.planClone(req, 'clone');
    const args = await this.prepareClone(pc);
    return this.startOnSource(pc.job, 'clone.start', args);
  }

  /**
   * A backup: through a live clone on a second host (seed 000), or directly from the VM with --direct.
   * With --incremental, the VM's newest backup is offered as the base; the agent falls back to a full
   * backup (and says why) when its change tracking does not match that base.
   */
  async backupVm(req: BackupRequest): Promise<JobRecord> {
    const backupId = newId('bk');
    const { vm, host: vmHost } = await this.locate(req.vm);
    const chunks = vm.disks.reduce((n, d) => n + Math.ceil(d.sizeMib / 4), 0);
    if (chunks > MAX_BACKUP_CHUNKS) {
      throw new FailedPreconditionError(
        `vm '${vm.name}' has ${vm.disks.reduce((n, d) => n + d.sizeMib, 0)} MiB of disk; a backup holds at most ${(MAX_BACKUP_CHUNKS * 4) / 1024} GiB (its indexes travel in one 8 MiB message)`,
      );
    }
    await this.checkRepository();
    const incremental = req.incremental === true;
    const newest = await this.d.catalog.latest(vm.id);
    const latest = incremental ? newest : undefined;
    const base = latest ? { backupId: latest.id, repository: latest.repository, ...(latest.bypass ? { arraySnapshot: latest.bypass.arraySnapshot } : {}) } : null;
    // A guest that writes volumes past the hypervisor is backed up on its own host, time-consistently (seed 001):
    // a live clone could not carry volumes the hypervisor does not see.
    const bypass = (vm.bypass ?? []).length > 0;
    if (req.skipRevert && !bypass) throw new InvalidArgumentError('skipRevert applies only to a VM with bypass volumes');
    const fullReason = !incremental
      ? 'a full backup was asked for (no --incremental)'
      : !latest
        ? `vm '${vm.name}' has no previous backup`
        : '';
    const info: BackupJobInfo = {
      backupId,
      mode: bypass ? 'bypass' : req.direct === true ? 'direct' : 'clone',
      incremental,
      baseBackupId: base?.backupId ?? '',
      keepClone: req.keepClone === true,
      repository: this.d.repository,
      result: null,
    };
    const cloneSettleMs = requireInt('clone settle time (ms)', req.cloneSettleMs ?? 0, 0, 3_600_000);
    const startArgs = {
      jobId: '',
      backupId,
      vmId: vm.id,
      mode: info.mode,
      base,
      fullReason,
      repository: this.d.repository,
      keepClone: info.keepClone,
      cloneSettleMs,
      ...(req.skipRevert ? { skipRevert: true } : {}),
      ...(newest?.bypass ? { previousArraySnapshot: newest.bypass.arraySnapshot } : {}),
      // The save set carries the VM's cluster as it is now (seed 003).
      cluster: await this.d.clusters.viewOf(vmHost).then((v) => ({ config: v.config, datastores: v.datastores })),
    };
    if (req.direct === true || bypass) {
      const { host } = await this.locate(req.vm);
      const job = { ...newJob('backup', vm, host, {}), backup: info };
      await this.d.jobs.create(job);
      return this.startOnSource(job, 'backup.start', { ...startArgs, jobId: job.id, clone: null, linked: false });
    }
    const pc = await this.planClone(
      {
        vm: vm.id,
        targetHost: req.cloneHost ?? '',
        maxDowntimeMs: req.maxDowntimeMs ?? 0,
        onNonConvergence: req.onNonConvergence ?? '',
        maxBandwidthMbps: req.maxBandwidthMbps ?? 0,
        cloneName: `${vm.name.slice(0, 40)}-bk-${backupId.slice(-6)}`,
      },
      'backup',
    );
    pc.job.backup = info;
    const clone = await this.prepareClone(pc);
    return this.startOnSource(pc.job, 'backup.start', { ...startArgs, jobId: pc.job.id, clone, linked: pc.linked });
  }

  /** Fails fast, before anything is cloned or paused, when the repository cannot be reached. */
  private async checkRepository(): Promise<void> {
    const repo = new RepositoryClient(this.d.repository, { callDeadlineMs: 5_000, transport: this.d.transport });
    try {
      await repo.info();
    } catch (err) {
      throw new UnavailableError(`the backup repository at ${this.d.repository} is unreachable: ${(err as Error).message}`, { cause: err });
    } finally {
      repo.close();
    }
  }

  listBackups(vm?: string, limit?: number): Promise<BackupRecord[]> {
    return this.d.catalog.list(vm ?? '', requireInt('limit', limit || 1000, 1, 100_000));
  }

  getBackup(id: string): Promise<BackupRecord> {
    return this.d.catalog.get(requireName('backup id', id));
  }

  /**
   * The save set of a backup (seed 003), read from its manifest in the repository and checked: a corrupt one (its
   * digest, or its disks against the manifest's, or a digest other than the catalog's) or a foreign one (another
   * format, another backup) is refused. Undefined for a backup made before save sets.
   */
  private async saveSetOf(backup: BackupRecord): Promise<SaveSet | undefined> {
    const repo = new RepositoryClient(backup.repository, { callDeadlineMs: 15_000, transport: this.d.transport });
    try {
      const m = await repo.manifest(backup.id);
      const expect = { backupId: backup.id, disks: m.disks.map((d) => ({ name: d.name, contentHash: d.contentHash })) };
      let hasKey = true;
      try {
        const meta: unknown = JSON.parse(m.metadataJson);
        hasKey = typeof meta === 'object' && meta !== null && 'saveSet' in meta;
      } catch {
        // Not JSON: openSaveSet says so.
      }
      if (!hasKey && !backup.saveSetDigest) return undefined;
      const saveSet = openSaveSet(m.metadataJson, expect);
      if (backup.saveSetDigest && saveSet.digest !== backup.saveSetDigest) {
        throw new DataCorruptionError(
          `the save set of backup ${backup.id} is corrupt: its digest is ${saveSet.digest.slice(0, 16)}…, the catalog recorded ${backup.saveSetDigest.slice(0, 16)}…`,
        );
      }
      return saveSet;
    } finally {
      repo.close();
    }
  }

  /** The plan of a restore (`--dry-run`): the changes, the problems; nothing is created. */
  async planRestore(req: RestoreRequest): Promise<RestorePlan> {
    const backup = await this.getBackup(req.backup);
    const saveSet = await this.saveSetOf(backup);
    if (!saveSet) {
      throw new FailedPreconditionError(`backup ${backup.id} has no save set (it was made before save sets): there is nothing to plan; restore it to a host with --to HOST`);
    }
    return this.plan(req, saveSet);
  }

  /**
   * Plans a restore from a save set: for the named cluster, or for the named host's cluster on that host's
   * datastore; with the maps. Nothing is created.
   */
  private async plan(req: RestoreRequest, saveSet: SaveSet): Promise<RestorePlan> {
    requireDestination(req);
    const maps = parseMaps(requireStrings('maps', req.maps));
    const hosts = await this.d.registry.list();
    let view: ClusterView;
    if (req.toHost) {
      const host = await this.upHost(req.toHost, 'restore');
      view = await this.d.clusters.viewOf(host, hosts);
      if (req.toCluster && view.config.name !== req.toCluster) {
        throw new InvalidArgumentError(`host '${host.name}' is in cluster '${view.config.name}', not '${req.toCluster}'`);
      }
      // The named host only: the plan's datastore is then the one it mounts.
      view = { ...view, hosts: view.hosts.filter((h) => h.name === host.name), datastores: view.datastores.map((d) => ({ ...d, mountedBy: d.mountedBy.filter((n) => n === host.name) })) };
      if (view.hosts[0] && !view.hosts[0].datastore) {
        throw new FailedPreconditionError(
          `host '${host.name}' mounts no datastore of cluster '${view.config.name}' (its datastore is ${view.hosts[0].datastorePath}); add it with 'doppel cluster add ${view.config.name} --replace --datastore NAME=${view.hosts[0].datastorePath}'`,
        );
      }
    } else {
      view = await this.d.clusters.view(requireName('cluster name', req.toCluster), hosts);
    }
    const plan = planRestore(saveSet, view, maps);
    // Bypass volumes are written onto the destination host's storage array: only a host with one can take them.
    if (saveSet.config.bypass.length > 0) {
      const withArray = plan.hosts.filter((n) => hosts.find((h) => h.name === n)?.array);
      if (plan.hosts.length > 0 && withArray.length === 0) {
        plan.problems.push(`bypass volumes: the VM has ${saveSet.config.bypass.length}, and no host of the plan (${plan.hosts.join(', ')}) has a storage array (agent --array)`);
      }
      plan.hosts = withArray;
    }
    return plan;
  }

  /**
   * Creates a VM from a backup. With a save set, the restore is planned first and refused, before any data
   * moves, when the destination cannot satisfy it; the agent then copies the save set to the chosen datastore and
   * imports the VM with the plan's changes. Every chunk is checked and the restored disks are hashed.
   */
  async restoreBackup(req: RestoreRequest): Promise<JobRecord> {
    requireDestination(req);
    const backup = await this.getBackup(req.backup);
    const saveSet = await this.saveSetOf(backup);
    let plan: RestorePlan | undefined;
    let host: HostRecord;
    let spec = backup.spec;
    if (saveSet) {
      const p = await this.plan(req, saveSet);
      plan = p;
      if (p.problems.length > 0) {
        throw new FailedPreconditionError(
          `backup ${backup.id} cannot be restored to cluster '${p.destinationCluster}'; nothing was copied:\n  - ${p.problems.join('\n  - ')}`,
        );
      }
      const hosts = await this.d.registry.list();
      const candidates = p.hosts.map((n) => hosts.find((h) => h.name === n)).filter((h): h is HostRecord => h !== undefined);
      const roomy = candidates.find((h) => h.state === 'up' && !roomProblem(h, p.memoryMib));
      if (!roomy) {
        const why = candidates.map((h) => roomProblem(h, p.memoryMib) || `host '${h.name}' is ${h.state}`).join('; ');
        throw new ResourceExhaustedError(`no host of cluster '${p.destinationCluster}' on datastore '${p.datastore?.name ?? ''}' has room now: ${why}`);
      }
      host = roomy;
      spec = { ...spec, cpuModel: p.cpuModel, ...(p.networks.length > 0 ? { nics: p.networks.map((network) => ({ network })) } : {}) };
    } else {
      if (req.toCluster || (req.maps ?? []).length > 0) {
        throw new FailedPreconditionError(`backup ${backup.id} has no save set (it was made before save sets): it can be restored only to a host (--to HOST), as it was`);
      }
      host = await this.upHost(req.toHost ?? '', 'restore');
      const problem = roomProblem(host, backup.spec.memoryMib);
      if (problem) throw new ResourceExhaustedError(problem);
    }
    const name = requireName('VM name', req.asName || `${backup.vmName.slice(0, 40)}-restored-${newId('x').slice(-4)}`);
    if (await this.d.registry.findVm(name)) throw new AlreadyExistsError(`a VM named '${name}' already exists`);
    // The restored VM is a new machine beside the source (which may still run): its own identity. The backup keeps the source's.
    const identity = await this.identities.allocate(name, hostnameFromName(name));
    const job: JobRecord = {
      ...newJob('restore', { id: backup.vm }, host, {}),
      restore: {
        backupId: backup.id,
        targetHost: host.name,
        vmName: name,
        vmId: '',
        diskHashes: [],
        hashesMatch: false,
        bytesWritten: 0,
        ms: 0,
        cluster: host.cluster,
        network: spec.nics?.[0]?.network ?? '',
        datastorePath: host.datastorePath,
        cpuModel: spec.cpuModel ?? '',
        plan: plan ?? null,
      },
    };
    await this.d.jobs.create(job);
    try {
      const r = await sendCommand(this.d.nc, host.name, 'vm.restore', { jobId: job.id, backup, name, start: req.start === true, identity, ...(plan ? { plan } : {}) }, 60_000);
      await this.d.jobs.update(job.id, (j) => ({ ...j, state: j.state === 'pending' ? 'running' : j.state, restore: j.restore && { ...j.restore, vmId: r.vm.id } }));
    } catch (err) {
      this.identities.release(identity.mac, err);
      await this.failJob(job.id, err);
      throw err;
    }
    return this.d.jobs.get(job.id);
  }

  addCluster(req: AddClusterRequest): Promise<ClusterView> {
    const { replace, ...config } = req;
    return this.d.clusters.add(config, replace === true);
  }

  getCluster(name: string): Promise<ClusterView> {
    return this.d.clusters.view(name);
  }

  listClusters(): Promise<ClusterView[]> {
    return this.d.clusters.list();
  }

  async removeCluster(name: string): Promise<{ removed: boolean }> {
    return { removed: await this.d.clusters.remove(name) };
  }

  /** Re-hashes every chunk of a backup in its repository; reports progress, and every bad chunk at the end. */
  async verifyBackup(id: string, onReport: (r: VerifyReport) => void | Promise<void>): Promise<VerifyReport> {
    const backup = await this.getBackup(id);
    return verifyInRepository(backup, this.d.transport, onReport);
  }

  private async failJob(id: string, err: unknown): Promise<void> {
    const e = err instanceof Error ? err : new Error(String(err));
    await this.d.jobs
      .update(id, (j) => ({ ...j, state: 'failed', error: e.message, errorName: e.name }))
      .catch((x: unknown) => this.d.log.warn({ err: x }, 'could not mark job failed'));
  }

  getJob(id: string): Promise<JobRecord> {
    return this.d.jobs.get(requireName('job id', id));
  }

  listJobs(limit?: number): Promise<JobRecord[]> {
    return this.d.jobs.list(requireInt('limit', limit || 100, 1, 10_000));
  }

  /**
   * Replays stored events (all of them, or from a sequence), then follows new
   * ones when asked. Returns when caught up (no follow) or when `signal` aborts.
   */
  async watchEvents(
    opts: { all?: boolean; startSeq?: number; follow?: boolean },
    onEvent: (e: StoredEvent) => void | Promise<void>,
    signal: AbortSignal,
  ): Promise<void> {
    const jsm = await jetstreamManager(this.d.nc);
    const info = await jsm.streams.info(STREAMS.events);
    const last = info.state.last_seq;
    if (!opts.follow && (info.state.messages === 0 || (opts.startSeq && opts.startSeq > last))) return;
    const deliver = opts.startSeq
      ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: opts.startSeq }
      : opts.all || !opts.follow
        ? { deliver_policy: DeliverPolicy.All }
        : { deliver_policy: DeliverPolicy.New };
    const consumer = await this.d.js.consumers.get(STREAMS.events, deliver);
    const messages = await consumer.consume();
    const stop = () => messages.stop();
    signal.addEventListener('abort', stop, { once: true });
    this.watches.signal.addEventListener('abort', stop, { once: true });
    // The caller may have gone while the consumer was being set up.
    if (signal.aborted || this.watches.signal.aborted) stop();
    try {
      for await (const m of messages) {
        await onEvent({ seq: m.seq, event: decodeJson<DoppelEvent>(m.data) });
        if (!opts.follow && m.seq >= last) break;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      this.watches.signal.removeEventListener('abort', stop);
      messages.stop();
    }
  }

  /**
   * A hot clone (seed 004): the source is frozen but never suspended; its memory image goes to the target and the
   * clone overlays the frozen disks on the shared datastore (or gets a full copy with copyDisks). No pre-copy, so no
   * bandwidth probe or dirty-rate measurement: the memory is frozen while it is copied.
   */
  private async hotCloneVm(req: CloneRequest): Promise<JobRecord> {
    const capMbps = requireInt('max bandwidth (MB/s)', req.maxBandwidthMbps ?? 0, 0, 1_000_000);
    if (req.fault) throw new InvalidArgumentError('fault injection applies to pre-copy clones, not hot clones');
    const { vm, host: source } = await this.locate(req.vm);
    let target: HostRecord;
    if (req.targetHost) {
      target = await this.namedTarget(req.targetHost, source, vm, 'a hot clone');
    } else {
      // A host on the same datastore with room when there is one (the clone then needs no disk copy); else any
      // host, and planHotClone says why that needs --copy-disks.
      const hosts = await this.d.registry.list();
      const peers = hosts.filter((h) => h.name !== source.name && source.datastore !== '' && h.datastore === source.datastore);
      const roomy = peers.filter((h) => h.state === 'up' && !roomProblem(h, vm.memoryMib));
      target = pickHost(!req.copyDisks && roomy.length > 0 ? roomy : hosts, vm.memoryMib, source.name);
    }
    const { linked } = planHotClone(vm, source, target, req.copyDisks === true);
    const cloneName = requireName('clone name', req.cloneName || `${vm.name.slice(0, 40)}-hot-${newId('x').slice(-6)}`);
    const job = newJob('hot-clone', vm, source, { targetHost: target.name });
    const capBytesPerS = capMbps * 1e6;
    const hostname = req.hostname ? requireHostname(req.hostname) : hostnameFromName(cloneName);
    const pc: PlannedClone = { job, vm, source, target, cloneName, hostname, capBytesPerS, linked, verify: req.verify === true, fault: '' };
    const c = await this.prepareClone(pc);
    return this.startOnSource(job, 'hotclone.start', {
      jobId: c.jobId,
      vmId: c.vmId,
      targetHost: c.targetHost,
      targetAddr: c.targetAddr,
      targetVmId: c.targetVmId,
      linked,
      verify: pc.verify,
      bufferBytes: HOT_BUFFER_BYTES,
      maxBandwidthBytesPerS: capBytesPerS,
      tokens: c.tokens,
    });
  }

  /**
   * Cancels a running clone or backup: its source agent stops the streams, the source VM runs on with all its
   * writes, and the half-made clone is removed when the job fails.
   */
  async cancelJob(id: string): Promise<JobRecord> {
    const job = await this.getJob(id);
    if (job.state === 'completed' || job.state === 'failed') throw new FailedPreconditionError(`job '${job.id}' has already ${job.state}`);
    if (job.kind === 'restore') throw new FailedPreconditionError(`job '${job.id}' is a restore; a restore cannot be cancelled (destroy the restored VM afterwards)`);
    const { cancelled } = await sendCommand(this.d.nc, job.plan.sourceHost, 'job.cancel', { jobId: job.id }, 10_000);
    if (!cancelled) {
      const now = await this.getJob(id);
      if (now.state === 'completed' || now.state === 'failed') throw new FailedPreconditionError(`job '${job.id}' has already ${now.state}`);
      throw new FailedPreconditionError(`job '${job.id}' is not running on host '${job.plan.sourceHost}' (it may be starting; try again)`);
    }
    this.d.log.info({ jobId: job.id, kind: job.kind }, 'job cancelled');
    return this.getJob(id);
  }

}
