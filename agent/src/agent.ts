/**
 * The agent: one per hypervisor host. It registers and heartbeats on NATS,
 * answers the coordinator's commands, and serves the gRPC data plane.
 */
import { stageImport, sweepImports, type StagedImport } from './backup/import-save-set.js';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Server } from '@grpc/grpc-js';
import type { JetStreamClient } from '@nats-io/jetstream';
import {
  AlreadyExistsError,
  AbortedError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  PAGE_SIZE,
  ResourceExhaustedError,
  SUBJECTS,
  encodeJson,
  jsClient,
  publishEvent,
  requireInt,
  requireName,
  serveCommands,
  shutdownServer,
  validateVmSpec,
  type AgentCommands,
  type CloneStartArgs,
  type CommandHandler,
  type Heartbeat,
  type Logger,
  type NatsConnection,
  type VmInfo,
  type VmSpec,
  type RestoreStartArgs,
  type StreamTokenVerifier,
  type Transport,
} from '../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver } from './drivers/driver.js';
import { QemuDriver } from './drivers/qemu/qemu-driver.js';
import type { CompiledAgentOptions } from './options.js';
import { CloneTargets, INCOMPLETE_STATES } from './clone-targets.js';
import { startDataPlaneServer } from './dataplane/server.js';
import { createDataPlaneClient, type DataPlaneClient } from './dataplane/client.js';
import { StreamGuard } from './dataplane/guard.js';
import { probeLink } from './precopy/probe.js';
import { FAULTS } from './precopy/sender.js';
import { runCloneJob } from './clone-job.js';
import { runHotCloneJob } from './hot-clone-job.js';
import { HOT_BUFFER_MAX_BYTES } from './drivers/driver.js';
import type { ArrayApi } from './bypass/array-view.js';
import { BYPASS_PIN_PREFIX } from './bypass/bypass-backup.js';
import { runBackupJob } from './backup/backup-job.js';
import { backupFromClone } from './backup/clone-backup.js';
import { runRestoreJob } from './backup/restore-job.js';
import { jobEvents } from './job-events.js';
import { StorageSnapshots } from './snapshots/store.js';

export interface AgentDeps {
  driver: HypervisorDriver;
  logger: Logger;
  nc: NatsConnection;
  /** Mutual TLS (or plaintext) for the data plane and the repository. */
  transport: Transport;
  /** Checks the coordinator's stream tokens (its public key, bound to this host's name). */
  tokens: StreamTokenVerifier;
  /** The storage array that holds the VMs' bypass volumes (seed 001), if the host has one. */
  array?: ArrayApi;
}

export class Agent {
  private readonly log: Logger;
  private readonly targets: CloneTargets;
  private readonly clients = new Map<string, DataPlaneClient>();
  /** VMs with a job running on them (a clone, a dirty-rate measurement). */
  private readonly busy = new Map<string, string>();
  private readonly jobs = new Set<Promise<void>>();
  /** Cancels running clones when the agent stops, so a stop never waits out a long clone. */
  private readonly stopping = new AbortController();
  /** Per running job: cancels it alone (`doppel job cancel`). */
  private readonly cancels = new Map<string, AbortController>();
  private js!: JetStreamClient;
  private server: Server | undefined;
  private stopCommands: (() => void) | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private snapshots: StorageSnapshots | undefined;
  private readonly startedAt = new Date().toISOString();
  /** 'kvm' or 'tcg' on the qemu driver. */
  private accel = 'sim';
  dataAddr = '';

  private constructor(
    readonly opts: CompiledAgentOptions,
    private readonly deps: AgentDeps,
  ) {
    this.log = deps.logger.child({ component: 'agent', host: opts.host });
    this.targets = new CloneTargets(deps.driver, this.log.child({ component: 'clone-targets' }));
  }

  /** The hypervisor driver, for diagnostics and tests. */
  get driver(): HypervisorDriver {
    return this.deps.driver;
  }

  /** The host's storage snapshots, for diagnostics and tests. */
  get storageSnapshots(): StorageSnapshots {
    if (!this.snapshots) throw new FailedPreconditionError('the agent has not started');
    return this.snapshots;
  }

  static async start(opts: CompiledAgentOptions, deps: AgentDeps): Promise<Agent> {
    const a = new Agent(opts, deps);
    await a.init();
    return a;
  }

  private async init(): Promise<void> {
    const { opts, deps } = this;
    await mkdir(opts.dataDir, { recursive: true });
    await writeFile(path.join(opts.dataDir, 'agent.json'), JSON.stringify({ host: opts.host, startedAt: this.startedAt }, null, 2));
    this.js = jsClient(deps.nc);
    // The coordinator creates the events stream; an agent's NATS permissions only let it publish into it.
    // VMs a previous run left: disks and configuration persist (and change tracking, after a clean stop).
    if (deps.driver instanceof QemuDriver) {
      // KVM when a probe guest runs under it, else TCG: said once here and in every heartbeat.
      const d = await deps.driver.accelDecision();
      this.accel = d.accel;
      this.log.info({ accel: d.accel, reason: d.reason }, `QEMU guests run under ${d.accel.toUpperCase()}`);
    }
    const loaded = await deps.driver.load();
    if (loaded.length > 0) this.log.info({ vms: loaded.map((v) => v.id) }, 'VMs of a previous run loaded');
    // A bypass backup that a crash cut off left its t1 pin: nothing else would ever drop it.
    const stalePins = await deps.driver.dropPins(`${BYPASS_PIN_PREFIX}${opts.host}.`);
    if (stalePins > 0) this.log.info({ stalePins }, 't1 snapshots of interrupted bypass backups dropped');
    // Likewise the save-set copies of restores a crash cut off (seed 003).
    const staleImports = sweepImports(deps.driver.datastore.path, opts.host);
    if (staleImports > 0) this.log.info({ staleImports }, 'save-set copies of interrupted restores removed');
    this.snapshots = await StorageSnapshots.open({
      driver: deps.driver,
      dataDir: opts.dataDir,
      log: this.log.child({ component: 'snapshots' }),
      lockVm: (vmId, what) => {
        this.lock(vmId, what);
        return () => this.busy.delete(vmId);
      },
    });
    const { server, addr } = await startDataPlaneServer(opts.listen, {
      targets: this.targets,
      log: this.log.child({ component: 'data-plane' }),
      guard: new StreamGuard(deps.transport, deps.tokens),
      transport: deps.transport,
    });
    this.server = server;
    this.dataAddr = opts.advertise || addr;
    this.stopCommands = serveCommands(deps.nc, opts.host, this.handlers(), (err, op) =>
      this.log.warn({ err, op }, 'command failed'),
    );
    this.heartbeat('up');
    this.heartbeatTimer = setInterval(() => this.heartbeat('up'), opts.heartbeatMs);
    this.log.info({ dataAddr: this.dataAddr, driver: deps.driver.name, accel: this.accel, capacity: opts.capacity }, 'agent started');
  }

  async stop(): Promise<void> {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.stopCommands?.();
    this.stopping.abort('the source agent is stopping');
    await Promise.allSettled([...this.jobs]);
    this.heartbeat('stopping');
    await this.deps.nc.flush().catch(() => undefined);
    this.targets.close();
    for (const c of this.clients.values()) c.close();
    if (this.server) await shutdownServer(this.server);
    this.snapshots?.close();
    await this.deps.driver.close();
    this.log.info('agent stopped');
  }

  private usedMemoryMib(): number {
    return this.deps.driver.list().reduce((sum, vm) => sum + vm.spec.memoryMib, 0);
  }

  private vmInfos(): VmInfo[] {
    return this.deps.driver.list().map((vm) => vm.info(this.opts.host));
  }

  /** The datastore's space, measured at most every 5 s (it lists the layers). */
  private space = { at: 0, usedMib: 0, freeMib: 0 };

  private datastoreSpace(): { usedMib: number; freeMib: number } {
    if (Date.now() - this.space.at > 5000) {
      try {
        this.space = { at: Date.now(), ...this.deps.driver.datastoreSpace() };
      } catch (err) {
        this.space = { ...this.space, at: Date.now() };
        this.log.warn({ err }, 'datastore space not measured');
      }
    }
    return this.space;
  }

  heartbeat(status: Heartbeat['status']): void {
    const mem = process.memoryUsage();
    const space = this.datastoreSpace();
    const hb: Heartbeat = {
      name: this.opts.host,
      dataAddr: this.dataAddr,
      driver: this.deps.driver.name,
      accel: this.accel,
      capacity: this.opts.capacity,
      usedMemoryMib: this.usedMemoryMib(),
      vms: this.vmInfos(),
      rssBytes: mem.rss,
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      startedAt: this.startedAt,
      datastore: this.deps.driver.datastore.id,
      cluster: this.opts.cluster,
      datastorePath: this.deps.driver.datastore.path,
      datastoreUsedMib: space.usedMib,
      datastoreFreeMib: space.freeMib,
      array: this.deps.array !== undefined,
      sentAt: new Date().toISOString(),
      status,
      intervalMs: this.opts.heartbeatMs,
    };
    try {
      this.deps.nc.publish(SUBJECTS.heartbeat(this.opts.host), encodeJson(hb));
    } catch (err) {
      this.log.warn({ err }, 'heartbeat not sent');
    }
  }

  private checkRoom(memoryMib: number): void {
    const { capacity } = this.opts;
    const free = capacity.memoryMib - this.usedMemoryMib();
    if (memoryMib > free) {
      throw new ResourceExhaustedError(`host '${this.opts.host}' lacks room: needs ${memoryMib} MiB, has ${free} MiB free`);
    }
    if (this.deps.driver.list().length >= capacity.maxVms) {
      throw new ResourceExhaustedError(`host '${this.opts.host}' already runs its maximum of ${capacity.maxVms} VMs`);
    }
  }

  private vm(id: string): DriverVm {
    const vm = this.deps.driver.get(id) ?? this.deps.driver.list().find((v) => v.spec.name === id);
    if (!vm) throw new NotFoundError(`vm '${id}' not found on host '${this.opts.host}'`);
    return vm;
  }

  private lock(vmId: string, job: string): void {
    const holder = this.busy.get(vmId);
    if (holder) throw new AbortedError(`vm '${vmId}' is busy with ${holder}`);
    this.busy.set(vmId, job);
  }

  /** A data-plane client for the agent of `host`; under TLS it must prove it is that host. */
  private client(host: string, addr: string): DataPlaneClient {
    const key = `${host}@${addr}`;
    let c = this.clients.get(key);
    if (!c) {
      c = createDataPlaneClient(addr, host, this.deps.transport);
      this.clients.set(key, c);
    }
    return c;
  }

  /** Runs a background job on a VM: it holds the VM's lock until it ends, and the agent's stop waits for it. */
  private startJob(vmId: string, what: string, run: () => Promise<void>, jobId = ''): void {
    try {
      this.lock(vmId, what);
    } catch (err) {
      this.cancels.delete(jobId);
      throw err;
    }
    const job = run().finally(() => {
      this.busy.delete(vmId);
      this.jobs.delete(job);
      this.cancels.delete(jobId);
    });
    this.jobs.add(job);
  }

  /** The signal a job runs under: the agent's stop, or a cancel of this job alone. */
  private jobSignal(jobId: string): AbortSignal {
    // A start sent twice must not take the running job's canceller.
    if (this.cancels.has(jobId)) throw new AlreadyExistsError(`job ${jobId} is already running on host '${this.opts.host}'`);
    const ac = new AbortController();
    this.cancels.set(jobId, ac);
    return AbortSignal.any([this.stopping.signal, ac.signal]);
  }

  private requireFaultAllowed(fault: string): void {
    if (!(FAULTS as readonly string[]).includes(fault)) throw new InvalidArgumentError(`unknown fault '${fault}'`);
    if (fault && !this.opts.allowFaultInjection) {
      throw new FailedPreconditionError(`fault injection is disabled on host '${this.opts.host}' (start it with --allow-fault-injection)`);
    }
  }

  /**
   * The deadline of a job's streams and requests: the configured one, or longer for large disks (at 20 MB/s,
   * a slow but live link), so that a 1 TiB disk is not cut off at 30 minutes while it is still progressing.
   */
  private jobDeadlineMs(vm: DriverVm): number {
    const bytes = vm.disks().reduce((n, d) => n + d.sizeBytes, 0) + vm.spec.memoryMib * 2 ** 20;
    return Math.max(this.opts.cloneDeadlineMs, 10 * 60_000 + (bytes / 20e6) * 1000);
  }

  private cloneDeps(vm: DriverVm, jobId: string) {
    return {
      js: this.js,
      host: this.opts.host,
      log: this.log,
      deadlineMs: this.jobDeadlineMs(vm),
      switchoverTimeoutMs: this.opts.switchoverTimeoutMs,
      signal: this.jobSignal(jobId),
      onSettled: () => this.heartbeat('up'),
      transport: this.deps.transport,
    };
  }

  private async announce(vm: DriverVm, type: 'vm.created' | 'vm.running' | 'vm.destroyed'): Promise<void> {
    this.heartbeat('up');
    await publishEvent(this.js, { type, host: this.opts.host, jobId: '', vm: vm.id }).catch((err: unknown) =>
      this.log.warn({ err }, 'could not publish event'),
    );
  }

  private checkCloneArgs(vm: DriverVm, args: CloneStartArgs): void {
    const t = this.targets.stateOf(vm.id);
    if (t && INCOMPLETE_STATES.includes(t)) throw new FailedPreconditionError(`vm '${vm.spec.name}' is a clone still ${t}`);
    requireInt('threshold (pages)', args.thresholdPages, 1, 2 ** 31);
    requireInt('max rounds', args.maxRounds, 1, 1000);
    this.requireFaultAllowed(args.fault);
  }

  /** A planned restore's plan, as this host checks it before anything is copied here. */
  private checkPlan(args: RestoreStartArgs): void {
    const plan = args.plan!;
    if (plan.backupId !== args.backup.id) throw new InvalidArgumentError(`the plan is for backup ${plan.backupId}, not ${args.backup.id}`);
    if (plan.destinationCluster !== this.opts.cluster) {
      throw new FailedPreconditionError(`the plan restores to cluster '${plan.destinationCluster}'; host '${this.opts.host}' is in '${this.opts.cluster}'`);
    }
    if (plan.problems.length > 0) throw new FailedPreconditionError(`the plan has problems: ${plan.problems.join('; ')}`);
  }

  /** Creates the restored VM and starts its restore job; `staged` is a planned import's save-set copy. */
  private async restoreVm(args: RestoreStartArgs, spec: VmSpec, staged: StagedImport | undefined): Promise<{ accepted: true; vm: VmInfo }> {
    const names = (disks: readonly { name: string }[]) => disks.map((d) => d.name).join(',');
    // A bypass-mode backup also holds the bypass volumes (restored onto the array): compare the image disks.
    const bypassDisks = new Set((args.backup.bypass?.volumes ?? []).map((v) => v.disk));
    if (names(spec.disks) !== names(args.backup.disks.filter((d) => !bypassDisks.has(d.name)))) {
      throw new InvalidArgumentError(`backup ${args.backup.id} holds disks [${names(args.backup.disks)}] but its configuration names [${names(spec.disks)}]`);
    }
    this.checkRoom(spec.memoryMib);
    const vm = await this.deps.driver.create(spec, { restore: true });
    await this.announce(vm, 'vm.created');
    this.startJob(vm.id, `restore job ${args.jobId}`, () =>
      runRestoreJob(vm, args, {
        ...(this.deps.array ? { array: this.deps.array } : {}),
        host: this.opts.host,
        cluster: this.opts.cluster,
        transport: this.deps.transport,
        driver: this.deps.driver,
        log: this.log,
        events: jobEvents(this.js, this.log),
        announce: (v, type) => this.announce(v, type),
        onSettled: () => {
          // The save set's copy has served its import.
          staged?.cleanup();
          this.heartbeat('up');
        },
      }),
    );
    return { accepted: true as const, vm: vm.info(this.opts.host) };
  }

  private handlers(): CommandHandler {
    const h: CommandHandler = {
      'vm.create': async (spec: VmSpec) => {
        const s = validateVmSpec(spec);
        this.checkRoom(s.memoryMib);
        const vm = await this.deps.driver.create(s);
        await this.announce(vm, 'vm.created');
        return vm.info(this.opts.host);
      },
      'vm.list': async () => this.vmInfos(),
      'vm.adopt': async ({ qmpSocket, name }) => {
        const driver = this.deps.driver;
        if (!(driver instanceof QemuDriver)) throw new FailedPreconditionError(`host '${this.opts.host}' runs the ${driver.name} driver; only the qemu driver adopts a QEMU`);
        const vm = await driver.adopt(qmpSocket, requireName('vm name', name));
        await this.announce(vm, 'vm.created');
        return vm.info(this.opts.host);
      },
      'vm.run': async ({ vmId }) => {
        const vm = this.vm(vmId);
        if (this.busy.has(vm.id)) throw new FailedPreconditionError(`vm '${vmId}' is busy with ${this.busy.get(vm.id)}`);
        const t = this.targets.stateOf(vm.id);
        if (t && INCOMPLETE_STATES.includes(t)) {
          throw new FailedPreconditionError(`clone '${vm.spec.name}' is ${t}: it can run once its memory and disks arrived`);
        }
        // Two running NICs with one MAC take each other's traffic.
        const mac = vm.spec.identity?.mac;
        const twin = vm.state === 'running' || !mac ? undefined : this.deps.driver.list().find((v) => v.id !== vm.id && v.state === 'running' && v.spec.identity?.mac === mac);
        if (twin) {
          throw new FailedPreconditionError(`vm '${vm.spec.name}' has MAC address ${mac}, which vm '${twin.spec.name}' (${twin.id}) already uses, running on host '${this.opts.host}'`);
        }
        await vm.run();
        this.targets.release(vm.id);
        await this.announce(vm, 'vm.running');
        return vm.info(this.opts.host);
      },
      'vm.destroy': async ({ vmId }) => {
        const vm = this.vm(vmId);
        if (this.busy.has(vm.id)) throw new FailedPreconditionError(`vm '${vmId}' is busy with ${this.busy.get(vm.id)}`);
        const t = this.targets.stateOf(vm.id);
        if (t === 'receiving' || t === 'disks') {
          throw new FailedPreconditionError(`clone '${vm.spec.name}' is receiving its ${t === 'disks' ? 'disks' : 'pre-copy stream'}; it is discarded if the stream fails`);
        }
        this.targets.release(vm.id);
        const destroyed = await this.deps.driver.destroy(vm.id);
        await this.announce(vm, 'vm.destroyed');
        return { destroyed };
      },
      'vm.dirty-rate': async ({ vmId, windowMs }) => {
        const vm = this.vm(vmId);
        requireInt('window (ms)', windowMs, 10, 10_000);
        this.lock(vm.id, 'a dirty-rate measurement');
        try {
          // Guest memory in 4 KiB pages (the qemu driver has no GuestPages: QEMU keeps the memory).
          return { pagesPerSecond: await vm.measureDirtyRate(windowMs), pageCount: Math.ceil((vm.spec.memoryMib * 1024 * 1024) / PAGE_SIZE) };
        } finally {
          this.busy.delete(vm.id);
        }
      },
      'clone.prepare': async ({ jobId, source, name, identity }) => {
        // The clone's own identity, from the coordinator (never the source's).
        const spec = validateVmSpec({ ...source, name: requireName('clone name', name), identity });
        this.checkRoom(spec.memoryMib);
        const vm = await this.deps.driver.create(spec, { incoming: true, cloneOf: source.id });
        this.targets.prepare(jobId, vm, source.host);
        this.heartbeat('up');
        return vm.info(this.opts.host);
      },
      'clone.start': async (args) => {
        const vm = this.vm(args.vmId);
        this.checkCloneArgs(vm, args);
        const deps = this.cloneDeps(vm, args.jobId);
        this.startJob(vm.id, `clone job ${args.jobId}`, () => runCloneJob(vm, args, { ...deps, client: this.client(args.targetHost, args.targetAddr) }), args.jobId);
        return { accepted: true as const };
      },
      'hotclone.start': async (args) => {
        const vm = this.vm(args.vmId);
        const t = this.targets.stateOf(vm.id);
        if (t && INCOMPLETE_STATES.includes(t)) throw new FailedPreconditionError(`vm '${vm.spec.name}' is a clone still ${t}`);
        if (vm.state !== 'running') throw new FailedPreconditionError(`vm '${vm.spec.name}' is ${vm.state}: a hot clone freezes a running VM`);
        requireInt('hot-clone buffer (bytes)', args.bufferBytes, 4096, HOT_BUFFER_MAX_BYTES);
        requireInt('max bandwidth (bytes/s)', args.maxBandwidthBytesPerS, 0, 2 ** 40);
        const deps = this.cloneDeps(vm, args.jobId);
        this.startJob(
          vm.id,
          `hot clone job ${args.jobId}`,
          () => runHotCloneJob(vm, args, { ...deps, client: this.client(args.targetHost, args.targetAddr), maxBandwidthBytesPerS: args.maxBandwidthBytesPerS }),
          args.jobId,
        );
        return { accepted: true as const };
      },
      'job.cancel': async ({ jobId }) => {
        requireName('job id', jobId);
        const ac = this.cancels.get(jobId);
        if (!ac) return { cancelled: false };
        ac.abort(new AbortedError(`job ${jobId} was cancelled`));
        return { cancelled: true };
      },
      'vm.storage': async ({ vmId }) => {
        const layers = this.vm(vmId).storageUsage();
        const sum = (shared: boolean) => layers.filter((l) => l.shared === shared).reduce((n, l) => n + l.bytes, 0);
        return { ownBytes: sum(false), sharedBytes: sum(true), layers };
      },
      'backup.start': async (args) => {
        const vm = this.vm(args.vmId);
        requireName('backup id', args.backupId);
        requireInt('clone settle time (ms)', args.cloneSettleMs, 0, 3_600_000);
        const t = this.targets.stateOf(vm.id);
        if (t && INCOMPLETE_STATES.includes(t)) throw new FailedPreconditionError(`vm '${vm.spec.name}' is a clone still ${t}: back it up once it is complete`);
        if (args.mode === 'clone') {
          if (!args.clone) throw new InvalidArgumentError('a clone-mode backup needs its clone arguments');
          this.checkCloneArgs(vm, args.clone);
        }
        if (args.skipRevert && !this.opts.allowFaultInjection) {
          throw new FailedPreconditionError(`skipping the revert is a test flag; host '${this.opts.host}' does not allow it (--allow-fault-injection)`);
        }
        if (args.mode === 'bypass' && !this.deps.array) {
          throw new FailedPreconditionError(`vm '${vm.spec.name}' has bypass volumes, but host '${this.opts.host}' has no storage array configured (--array URL)`);
        }
        const deps = this.cloneDeps(vm, args.jobId);
        this.startJob(vm.id, `backup job ${args.jobId}`, () =>
          runBackupJob(vm, args, {
            ...deps,
            nc: this.deps.nc,
            heartbeatMs: this.opts.heartbeatMs,
            driver: this.deps.driver,
            ...(this.deps.array ? { array: this.deps.array } : {}),
            ...(args.clone ? { client: this.client(args.clone.targetHost, args.clone.targetAddr) } : {}),
          }),
          args.jobId,
        );
        return { accepted: true as const };
      },
      'clone.backup': async (args, { from }) => {
        const clone = this.targets.completed(args.jobId, args.cloneVmId, from);
        this.targets.release(clone.id);
        this.lock(clone.id, `backup job ${args.jobId}`);
        try {
          return await backupFromClone(clone, args, {
            host: this.opts.host,
            transport: this.deps.transport,
            driver: this.deps.driver,
            log: this.log,
            events: jobEvents(this.js, this.log),
            announce: (v, type) => this.announce(v, type),
          });
        } finally {
          this.busy.delete(clone.id);
        }
      },
      'vm.restore': async (args) => {
        requireName('job id', args.jobId);
        requireName('restored VM name', args.name);
        if ((args.backup.bypass?.volumes ?? []).length > 0 && !this.deps.array) {
          throw new FailedPreconditionError(`backup ${args.backup.id} holds bypass volumes, but host '${this.opts.host}' has no storage array (--array URL)`);
        }
        if (args.plan) {
          this.checkPlan(args);
          this.checkRoom(args.plan.memoryMib);
        }
        // Planned from the save set (seed 003): copied here, checked, and imported with the plan's changes.
        const staged = args.plan
          ? await stageImport(args, { transport: this.deps.transport, datastorePath: this.deps.driver.datastore.path, host: this.opts.host })
          : undefined;
        try {
          return await this.restoreVm(args, staged?.spec ?? validateVmSpec({ ...args.backup.spec, name: args.name, identity: args.identity }), staged);
        } catch (err) {
          staged?.cleanup();
          throw err;
        }
      },
      'snapshot.create': (args) => this.storageSnapshots.create(args),
      'snapshot.commit': ({ storageId }) => this.storageSnapshots.commit(storageId),
      'snapshot.delete': ({ storageId }) => this.storageSnapshots.delete(storageId),
      'snapshot.list': async () => this.storageSnapshots.list(),
      'snapshot.hash': ({ storageId }) => this.storageSnapshots.hash(storageId),
      'snapshot.revert': async (args) => {
        const r = await this.storageSnapshots.revert(args);
        const vm = this.deps.driver.list().find((v) => v.id === args.vmId || v.spec.name === args.vmId);
        if (vm && r.runState === 'running') await this.announce(vm, 'vm.running');
        else this.heartbeat('up');
        return r;
      },
      'link.probe': async ({ targetHost, targetAddr, bytes, maxBandwidthBytesPerS, tokens }) => {
        requireInt('probe size', bytes, 4096, 1024 * 1024 * 1024);
        return { bytesPerSecond: await probeLink(this.client(targetHost, targetAddr), targetHost, bytes, maxBandwidthBytesPerS, tokens) };
      },
    };
    return h;
  }
}
