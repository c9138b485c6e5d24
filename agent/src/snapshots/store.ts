/**
 * The host's storage snapshots (the agent's half of a snapshot pair, seed 002):
 * frozen copy-on-write layers of every disk of a VM, pinned in the datastore
 * (see DriverVm.createStorageSnapshot), and a record per snapshot in
 * `<dataDir>/snapshots/<storageId>.json`. The record holds what the host needs
 * to read, revert and delete the snapshot: its id, VM, timestamp and layer
 * chains. Never the metadata snapshot's id nor the VM's execution state: with
 * `capture` these are handed to the coordinator, which keeps them in its
 * network store.
 *
 * A snapshot stays 'pending' until the coordinator has stored its metadata and
 * catalog entry and commits it; one still pending after `pendingTtlMs`, or
 * found pending when the agent starts, is discarded, so nothing half-linked
 * survives. Records are written by rename; a record is marked pending again
 * before its pins go, and written as pending (with no layers) before the pins
 * are made, so a crash at any point leaves something the next start discards.
 *
 * A VM destroyed while it has storage snapshots keeps nothing but those: their
 * pinned layers stay readable (hash) until the snapshots are deleted; a revert
 * needs the VM.
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  DEFAULT_CHUNK_SIZE,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  type CapturedState,
  type ExecutionState,
  type HostStorageSnapshot,
  type Logger,
  type ResourceUsage,
  type SnapshotCreateArgs,
  type SnapshotCreateResult,
  type SnapshotRevertArgs,
  type SnapshotRevertResult,
  type VmSpec,
} from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver } from '../drivers/driver.js';
import { contentHashOfView } from '../backup/upload.js';

/** `st-` and up to 125 more characters of a safe alphabet (the id names a file and a layer reference). */
const STORAGE_ID = /^st-[A-Za-z0-9][A-Za-z0-9_-]{0,124}$/;
const VM_REF = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const RUN_STATES: readonly string[] = ['running', 'suspended'];

export const DEFAULT_PENDING_TTL_MS = 60_000;
export const DEFAULT_SAMPLE_MS = 250;

export interface StorageSnapshotsOptions {
  driver: HypervisorDriver;
  /** The agent's data directory: records go to `<dataDir>/snapshots/`. */
  dataDir: string;
  log: Logger;
  /** A snapshot not committed within this long is discarded. Default 60 s. */
  pendingTtlMs?: number;
  /** The resource-usage sample window before a captured snapshot's frozen moment. Default 250 ms. */
  sampleMs?: number;
  /**
   * Holds the VM against the agent's jobs (a clone, a backup) while a snapshot or a revert suspends and runs it;
   * throws if a job holds it. Returns the release.
   */
  lockVm?: (vmId: string, what: string) => () => void;
}

function requireStorageId(id: unknown): string {
  if (typeof id !== 'string' || !STORAGE_ID.test(id)) {
    throw new InvalidArgumentError(`storage snapshot id must be 'st-' and up to 125 letters, digits, '-' or '_' (got ${JSON.stringify(id)})`);
  }
  return id;
}

function requireVmRef(id: unknown): string {
  if (typeof id !== 'string' || !VM_REF.test(id)) throw new InvalidArgumentError(`vm id must be 1-128 letters, digits, '-' or '_' (got ${JSON.stringify(id)})`);
  return id;
}

/** The layer reference that pins a snapshot's layers in the datastore. */
function pinRef(storageId: string): string {
  return `snap-${storageId}`;
}

/** JSON as it travels: key order and undefined members do not count. */
function plain(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v)) as unknown;
}

function chainsOf(rec: HostStorageSnapshot): string[][] {
  return rec.disks.map((d) => d.layers);
}

function isRecord(v: unknown): v is HostStorageSnapshot {
  const r = v as Partial<HostStorageSnapshot> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.id === 'string' &&
    STORAGE_ID.test(r.id) &&
    typeof r.vm === 'string' &&
    (r.state === 'pending' || r.state === 'committed') &&
    Array.isArray(r.disks) &&
    r.disks.every((d) => typeof d === 'object' && d !== null && typeof d.name === 'string' && Array.isArray(d.layers) && d.layers.every((l) => typeof l === 'string'))
  );
}

export class StorageSnapshots {
  private readonly dir: string;
  private readonly driver: HypervisorDriver;
  private readonly log: Logger;
  private readonly lockVm: (vmId: string, what: string) => () => void;
  private readonly sampleMs: number;
  /** Complete records (pinned layers), by id. */
  private readonly records = new Map<string, HostStorageSnapshot>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Per snapshot id: operations on it take turns. */
  private readonly turns = new Map<string, Promise<unknown>>();
  /** A snapshot not committed within this long is discarded (applies to snapshots created from then on). */
  pendingTtlMs: number;
  private closed = false;

  private constructor(opts: StorageSnapshotsOptions) {
    this.dir = path.join(opts.dataDir, 'snapshots');
    this.driver = opts.driver;
    this.log = opts.log;
    this.lockVm = opts.lockVm ?? (() => () => undefined);
    this.pendingTtlMs = opts.pendingTtlMs ?? DEFAULT_PENDING_TTL_MS;
    this.sampleMs = opts.sampleMs ?? DEFAULT_SAMPLE_MS;
  }

  /** Loads the records a previous run left (after the driver loaded its VMs); pending ones are discarded. */
  static async open(opts: StorageSnapshotsOptions): Promise<StorageSnapshots> {
    const s = new StorageSnapshots(opts);
    await s.load();
    return s;
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private async load(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    for (const name of await readdir(this.dir)) {
      const file = path.join(this.dir, name);
      if (!name.endsWith('.json')) {
        // A write cut short before its rename.
        if (name.endsWith('.tmp')) await rm(file, { force: true });
        continue;
      }
      let rec: unknown;
      try {
        rec = JSON.parse(await readFile(file, 'utf8'));
      } catch (err) {
        this.log.warn({ err, file }, 'unreadable storage snapshot record left as it is');
        continue;
      }
      if (!isRecord(rec) || `${rec.id}.json` !== name) {
        this.log.warn({ file }, 'malformed storage snapshot record left as it is');
        continue;
      }
      if (rec.state === 'committed') {
        this.records.set(rec.id, rec);
        continue;
      }
      // The coordinator never linked it (or it was being deleted): nothing half-linked survives a restart.
      await this.discard(rec, 'found pending at start');
    }
  }

  private async writeRecord(rec: HostStorageSnapshot): Promise<void> {
    const file = this.file(rec.id);
    await writeFile(`${file}.tmp`, JSON.stringify(rec, null, 1));
    await rename(`${file}.tmp`, file);
  }

  /**
   * Unpins the snapshot's layers and removes its record. A record with no layers is one whose creation was cut
   * short around its pinning: the pin is dropped from the VM's whole chain (the pinned layers stay in it, shared,
   * as long as the pin holds them).
   */
  private async discard(rec: HostStorageSnapshot, why: string): Promise<void> {
    this.clearTimer(rec.id);
    this.records.delete(rec.id);
    let chains = chainsOf(rec);
    if (chains.every((c) => c.length === 0)) chains = this.driver.get(rec.vm)?.diskChains() ?? [];
    await this.driver.unpinLayers(pinRef(rec.id), chains);
    await rm(this.file(rec.id), { force: true });
    this.log.info({ storageId: rec.id, vm: rec.vm, why }, 'storage snapshot discarded');
  }

  private clearTimer(id: string): void {
    const t = this.timers.get(id);
    if (t) clearTimeout(t);
    this.timers.delete(id);
  }

  /** Runs `fn` after every earlier operation on snapshot `id`. */
  private turn<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.turns.get(id) ?? Promise.resolve();
    const p = prev.then(fn, fn);
    const done = p.catch(() => undefined);
    this.turns.set(id, done);
    void done.then(() => {
      if (this.turns.get(id) === done) this.turns.delete(id);
    });
    return p;
  }

  private findVm(ref: string): DriverVm {
    const vm = this.driver.get(ref) ?? this.driver.list().find((v) => v.spec.name === ref);
    if (!vm) throw new NotFoundError(`vm '${ref}' not found on this host`);
    return vm;
  }

  private record(id: string): HostStorageSnapshot {
    const rec = this.records.get(requireStorageId(id));
    if (!rec) throw new NotFoundError(`storage snapshot '${id}' not found on this host`);
    return rec;
  }

  private async holding<T>(vm: DriverVm, what: string, fn: () => Promise<T>): Promise<T> {
    const release = this.lockVm(vm.id, what);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /**
   * What the VM uses over a short window before the frozen moment: vCPU time, pages dirtied (the dirty log is
   * cleared and counted, as a dirty-rate measurement does), and disk and network bytes from the driver's counters.
   */
  private async sample(vm: DriverVm): Promise<ResourceUsage> {
    const idle: ResourceUsage = {
      cpuPercent: 0,
      memoryMib: vm.spec.memoryMib,
      dirtyPagesPerS: 0,
      diskReadBytesPerS: 0,
      diskWriteBytesPerS: 0,
      netRxBytesPerS: 0,
      netTxBytesPerS: 0,
      windowMs: 0,
    };
    if (vm.state !== 'running') return idle;
    const pages = vm.pages();
    pages.clearDirtyLog();
    const u0 = vm.usage();
    const t0 = performance.now();
    await sleep(this.sampleMs);
    const u1 = vm.usage();
    const dirty = pages.countDirty();
    const ms = performance.now() - t0;
    const rate = (a: number, b: number) => (Math.max(0, b - a) * 1000) / ms;
    return {
      cpuPercent: u0.cpuMs === null || u1.cpuMs === null ? 0 : Math.min(100 * vm.spec.vcpus, (Math.max(0, u1.cpuMs - u0.cpuMs) * 100) / ms),
      memoryMib: vm.spec.memoryMib,
      dirtyPagesPerS: (dirty * 1000) / ms,
      diskReadBytesPerS: rate(u0.diskReadBytes, u1.diskReadBytes),
      diskWriteBytesPerS: rate(u0.diskWriteBytes, u1.diskWriteBytes),
      netRxBytesPerS: rate(u0.netRxBytes, u1.netRxBytes),
      netTxBytesPerS: rate(u0.netTxBytes, u1.netTxBytes),
      windowMs: ms,
    };
  }

  /**
   * A storage snapshot of every disk of the VM, pending until commit(). With `capture`, also the VM's
   * configuration, execution state and resource usage at that frozen moment: the guest is suspended around the
   * state save and the freeze (pauseMs), and they are returned, never stored here.
   */
  create(args: SnapshotCreateArgs): Promise<SnapshotCreateResult> {
    const id = requireStorageId(args.storageId);
    const vmRef = requireVmRef(args.vmId);
    if (typeof args.timestamp !== 'string' || !ISO_MS.test(args.timestamp) || Number.isNaN(Date.parse(args.timestamp))) {
      throw new InvalidArgumentError(`timestamp must be ISO 8601 with milliseconds, UTC (got ${JSON.stringify(args.timestamp)})`);
    }
    if (typeof args.capture !== 'boolean') throw new InvalidArgumentError('capture must be true or false');
    if (this.closed) throw new FailedPreconditionError('the agent is stopping');
    const vm = this.findVm(vmRef);
    return this.turn(id, () => this.holding(vm, `storage snapshot ${id}`, () => this.createNow(vm, id, args)));
  }

  private async createNow(vm: DriverVm, id: string, args: SnapshotCreateArgs): Promise<SnapshotCreateResult> {
    if (this.records.has(id) || existsSync(this.file(id))) throw new AlreadyExistsError(`storage snapshot '${id}' already exists on this host`);
    const resources = args.capture ? await this.sample(vm) : null;
    // Merges left by earlier snapshots finish now, in the guest (no pause), so the freeze is O(1).
    await vm.settleDisks();
    const rec: HostStorageSnapshot = {
      id,
      vm: vm.id,
      timestamp: args.timestamp,
      disks: vm.disks().map((d) => ({ name: d.name, sizeMib: d.sizeBytes / 2 ** 20, layers: [] })),
      state: 'pending',
      createdAt: new Date().toISOString(),
      createMs: 0,
    };
    // Written before the pins, so a crash from here on leaves a pending record the next start discards.
    await this.writeRecord(rec);
    const ref = pinRef(id);
    let chains: string[][] | undefined;
    let captured: CapturedState | null = null;
    let pauseMs = 0;
    try {
      if (args.capture && resources) {
        const config = plain(vm.spec) as VmSpec;
        const wasRunning = vm.state === 'running';
        const t0 = performance.now();
        if (wasRunning) await vm.suspend();
        let execution: ExecutionState;
        try {
          const state = vm.saveState();
          execution = { runState: wasRunning ? 'running' : 'suspended', vcpu: state.vcpu.toString('utf8'), devices: state.devices.toString('utf8') };
          const c0 = performance.now();
          chains = (await vm.createStorageSnapshot(ref)).chains;
          rec.createMs = performance.now() - c0;
        } finally {
          if (wasRunning) await vm.run();
        }
        pauseMs = wasRunning ? performance.now() - t0 : 0;
        captured = { config, execution, resources };
      } else {
        const c0 = performance.now();
        const made = await vm.createStorageSnapshot(ref);
        rec.createMs = performance.now() - c0;
        chains = made.chains;
        pauseMs = made.pauseMs;
      }
      if (chains.length !== rec.disks.length) throw new Error(`the driver froze ${chains.length} chains for ${rec.disks.length} disks`);
      rec.disks.forEach((d, i) => (d.layers = chains![i]!));
      await this.writeRecord(rec);
    } catch (err) {
      // Nothing stays of a failed snapshot: its pins go (from the VM's chain if the chains were never learnt).
      await this.driver.unpinLayers(ref, chains ?? vm.diskChains()).catch((e: unknown) => this.log.warn({ err: e, storageId: id }, 'could not unpin'));
      await rm(this.file(id), { force: true });
      throw err;
    }
    this.records.set(id, rec);
    if (!this.closed) {
      // Unref'd: a pending snapshot never keeps the process alive (an unclean stop discards it at the next start).
      const timer = setTimeout(() => void this.expire(id), this.pendingTtlMs);
      timer.unref();
      this.timers.set(id, timer);
    }
    this.log.info({ storageId: id, vm: vm.id, createMs: rec.createMs, pauseMs, layers: rec.disks.map((d) => d.layers.length) }, 'storage snapshot created');
    return { storage: structuredClone(rec), captured, pauseMs };
  }

  /** The pending time is up: discard the snapshot unless it was committed meanwhile. */
  private async expire(id: string): Promise<void> {
    this.timers.delete(id);
    await this.turn(id, async () => {
      const rec = this.records.get(id);
      if (!rec || rec.state !== 'pending' || this.closed) return;
      await this.discard(rec, `not committed within ${this.pendingTtlMs} ms`);
    }).catch((err: unknown) => this.log.warn({ err, storageId: id }, 'could not discard an expired storage snapshot'));
  }

  /** The coordinator stored the snapshot's metadata and catalog entry: it is kept from now on. */
  commit(storageId: string): Promise<{ committed: true }> {
    const id = requireStorageId(storageId);
    return this.turn(id, async () => {
      const rec = this.records.get(id);
      if (!rec) throw new NotFoundError(`storage snapshot '${id}' not found on this host (a pending snapshot is discarded after ${this.pendingTtlMs} ms)`);
      if (rec.state !== 'committed') {
        await this.writeRecord({ ...rec, state: 'committed' });
        rec.state = 'committed';
      }
      this.clearTimer(id);
      return { committed: true as const };
    });
  }

  /** Deletes a snapshot: its pins go (layers other snapshots or VMs use stay), then its record. */
  delete(storageId: string): Promise<{ deleted: boolean }> {
    const id = requireStorageId(storageId);
    return this.turn(id, async () => {
      const rec = this.records.get(id);
      if (!rec) return { deleted: false };
      // Pending again first: a crash while unpinning leaves a record the next start discards.
      if (rec.state === 'committed') await this.writeRecord({ ...rec, state: 'pending' });
      await this.discard(rec, 'deleted');
      return { deleted: true };
    });
  }

  list(): HostStorageSnapshot[] {
    return [...this.records.values()].map((r) => structuredClone(r)).sort((a, b) => a.timestamp.localeCompare(b.timestamp) || a.id.localeCompare(b.id));
  }

  /** Content hash per disk of the snapshot's frozen chains: the hash backups and restores use (equal content, equal hash). */
  hash(storageId: string): Promise<{ diskHashes: string[] }> {
    const id = requireStorageId(storageId);
    return this.turn(id, async () => ({ diskHashes: await this.hashChains(this.record(id)) }));
  }

  private async hashChains(rec: HostStorageSnapshot): Promise<string[]> {
    const { views, close } = this.driver.openChainViews(rec.disks);
    try {
      const hashes: string[] = [];
      for (const v of views) hashes.push(await contentHashOfView(v, DEFAULT_CHUNK_SIZE));
      return hashes;
    } finally {
      close();
    }
  }

  /**
   * Reverts the VM to a committed snapshot: its disks to the snapshot's frozen chains and its vCPU and device
   * state to the linked metadata snapshot's execution state (guest memory is not part of either). The sim cannot
   * change a VM's configuration, so the metadata's must equal the VM's. Change tracking is lost: the next backup
   * is full.
   */
  revert(args: SnapshotRevertArgs): Promise<SnapshotRevertResult> {
    const id = requireStorageId(args.storageId);
    const vmRef = requireVmRef(args.vmId);
    const exec = args.execution as Partial<ExecutionState> | undefined;
    if (!exec || typeof exec.vcpu !== 'string' || typeof exec.devices !== 'string' || typeof exec.runState !== 'string' || !RUN_STATES.includes(exec.runState)) {
      throw new InvalidArgumentError('execution state must have runState (running or suspended), vcpu and devices');
    }
    const execution = exec as ExecutionState;
    const rec = this.record(id);
    const vm = this.findVm(vmRef);
    if (vm.id !== rec.vm) throw new FailedPreconditionError(`storage snapshot '${id}' is of vm '${rec.vm}', not of vm '${vm.id}'`);
    if (rec.state !== 'committed') throw new FailedPreconditionError(`storage snapshot '${id}' is still pending: it has no metadata snapshot yet`);
    // A metadata snapshot taken before VMs had identities carries none: the VM's own stands in.
    const config = args.config && !args.config.identity ? { ...args.config, identity: vm.spec.identity } : args.config;
    if (!isDeepStrictEqual(plain(config), plain(vm.spec))) {
      const cfg = (config ?? {}) as unknown as Record<string, unknown>;
      const spec = vm.spec as unknown as Record<string, unknown>;
      const differ = [...new Set([...Object.keys(cfg), ...Object.keys(spec)])].filter((k) => !isDeepStrictEqual(plain(cfg[k]), plain(spec[k])));
      throw new FailedPreconditionError(
        `the metadata snapshot's configuration of vm '${vm.spec.name}' differs from its current one (${differ.join(', ')}): the sim driver cannot change a VM's configuration`,
      );
    }
    return this.turn(id, () => this.holding(vm, `revert to storage snapshot ${id}`, () => this.revertNow(vm, rec, execution)));
  }

  private async revertNow(vm: DriverVm, rec: HostStorageSnapshot, execution: ExecutionState): Promise<SnapshotRevertResult> {
    if (!this.records.has(rec.id)) throw new NotFoundError(`storage snapshot '${rec.id}' was deleted`);
    const t0 = performance.now();
    const wasRunning = vm.state === 'running';
    await vm.suspend();
    const saved = vm.saveState();
    const diskHashes: string[] = [];
    let reverted = false;
    try {
      vm.loadState({ vcpu: Buffer.from(execution.vcpu, 'utf8'), devices: Buffer.from(execution.devices, 'utf8') });
      await vm.revertDisks(chainsOf(rec));
      reverted = true;
      // The disks as the guest will see them, hashed before it can write.
      for (let i = 0; i < rec.disks.length; i++) diskHashes.push(await contentHashOfView(vm.liveDiskView(i), DEFAULT_CHUNK_SIZE));
    } catch (err) {
      // Not reverted: the VM goes on as it was (a state half loaded is put back).
      if (!reverted) vm.loadState(saved);
      if (wasRunning) await vm.run().catch((e: unknown) => this.log.warn({ err: e, vm: vm.id }, 'could not run the VM again after a failed revert'));
      throw err;
    }
    if (execution.runState === 'running') await vm.run();
    // The frozen chains do not change: hashed with the guest running again.
    const snapshotHashes = await this.hashChains(rec);
    const ms = performance.now() - t0;
    this.log.info({ storageId: rec.id, vm: vm.id, ms, match: diskHashes.every((h, i) => h === snapshotHashes[i]) }, 'vm reverted to storage snapshot');
    return { diskHashes, snapshotHashes, runState: vm.state, ms };
  }

  /** Stops the pending timers (the agent stops): pending snapshots are discarded at the next start. */
  close(): void {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
