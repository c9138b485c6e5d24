/** A promise-shaped client for the coordinator's gRPC API, used by the CLI, the demo and tests. */
import { InterceptingCall, credentials, type Interceptor, type ServiceError } from '@grpc/grpc-js';
import {
  COORDINATOR_SERVER,
  channelCredentials,
  channelCredentialsCaOnly,
  fromServiceError,
  loadCoordinatorProto,
  type TlsIdentity,
} from '../../shared/src/mod.js';
import type { CoordinatorClient as RawClient } from '../../shared/src/gen/doppel/v1/Coordinator.js';
import type { Host__Output } from '../../shared/src/gen/doppel/v1/Host.js';
import type { VM__Output } from '../../shared/src/gen/doppel/v1/VM.js';
import type { Job__Output } from '../../shared/src/gen/doppel/v1/Job.js';
import type { VMStorage__Output } from '../../shared/src/gen/doppel/v1/VMStorage.js';
import type { Event__Output } from '../../shared/src/gen/doppel/v1/Event.js';
import type { CloneVMRequest } from '../../shared/src/gen/doppel/v1/CloneVMRequest.js';
import type { ListHostsResponse__Output } from '../../shared/src/gen/doppel/v1/ListHostsResponse.js';
import type { ListVMsResponse__Output } from '../../shared/src/gen/doppel/v1/ListVMsResponse.js';
import type { ListJobsResponse__Output } from '../../shared/src/gen/doppel/v1/ListJobsResponse.js';
import type { DestroyVMResponse__Output } from '../../shared/src/gen/doppel/v1/DestroyVMResponse.js';
import type { CreateVMRequest } from '../../shared/src/gen/doppel/v1/CreateVMRequest.js';
import type { AdoptVMRequest } from '../../shared/src/gen/doppel/v1/AdoptVMRequest.js';
import type { Backup__Output } from '../../shared/src/gen/doppel/v1/Backup.js';
import type { BackupVMRequest } from '../../shared/src/gen/doppel/v1/BackupVMRequest.js';
import type { CatalogResponse__Output } from '../../shared/src/gen/doppel/v1/CatalogResponse.js';
import type { RestoreBackupRequest } from '../../shared/src/gen/doppel/v1/RestoreBackupRequest.js';
import type { RestorePlan__Output } from '../../shared/src/gen/doppel/v1/RestorePlan.js';
import type { AddClusterRequest } from '../../shared/src/gen/doppel/v1/AddClusterRequest.js';
import type { Cluster__Output } from '../../shared/src/gen/doppel/v1/Cluster.js';
import type { ListClustersResponse__Output } from '../../shared/src/gen/doppel/v1/ListClustersResponse.js';
import type { RemoveClusterResponse__Output } from '../../shared/src/gen/doppel/v1/RemoveClusterResponse.js';
import type { VerifyReport__Output } from '../../shared/src/gen/doppel/v1/VerifyReport.js';
import type { SnapshotPair__Output } from '../../shared/src/gen/doppel/v1/SnapshotPair.js';
import type { SnapshotList__Output } from '../../shared/src/gen/doppel/v1/SnapshotList.js';
import type { RevertSnapshotResponse__Output } from '../../shared/src/gen/doppel/v1/RevertSnapshotResponse.js';
import type { DeleteSnapshotResponse__Output } from '../../shared/src/gen/doppel/v1/DeleteSnapshotResponse.js';
import type { SnapshotCheckReport__Output } from '../../shared/src/gen/doppel/v1/SnapshotCheckReport.js';

export type { Host__Output as Host, VM__Output as VM, Job__Output as Job, Event__Output as Event, Backup__Output as Backup };
export type { VerifyReport__Output as VerifyReport };
export type { SnapshotPair__Output as SnapshotPair, SnapshotList__Output as SnapshotList, RevertSnapshotResponse__Output as RevertSnapshotResult };

const DEADLINE_MS = 120_000;

/** How a client proves itself: a client certificate, or TLS to the server plus a bearer token, or nothing (plaintext). */
export interface ClientSecurity {
  identity?: TlsIdentity;
  /** The fleet CA, to check the coordinator's certificate when the client has none of its own. */
  ca?: Buffer;
  token?: string;
}

/** Adds `authorization: Bearer TOKEN` to every call. */
function bearer(token: string): Interceptor {
  return (options, nextCall) =>
    new InterceptingCall(nextCall(options), {
      start: (metadata, listener, next) => {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

export class CoordinatorClient {
  private readonly raw: RawClient;

  constructor(
    readonly addr: string,
    security: ClientSecurity = {},
  ) {
    const proto = loadCoordinatorProto();
    const { creds, options } = security.identity
      ? channelCredentials({ kind: 'tls', identity: security.identity }, COORDINATOR_SERVER)
      : security.ca
        ? channelCredentialsCaOnly(security.ca, COORDINATOR_SERVER)
        : { creds: credentials.createInsecure(), options: {} };
    this.raw = new proto.doppel.v1.Coordinator(addr, creds, {
      ...options,
      ...(security.token ? { interceptors: [bearer(security.token)] } : {}),
    });
  }

  private call<Res>(fn: (opts: { deadline: number }, cb: (err: ServiceError | null, res?: Res) => void) => unknown): Promise<Res> {
    return new Promise((resolve, reject) => {
      fn({ deadline: Date.now() + DEADLINE_MS }, (err, res) =>
        err || res === undefined ? reject(fromServiceError(err, `coordinator ${this.addr}`)) : resolve(res),
      );
    });
  }

  async hosts(): Promise<Host__Output[]> {
    return (await this.call<ListHostsResponse__Output>((o, cb) => this.raw.listHosts({}, o, cb))).hosts;
  }

  async vms(host = ''): Promise<VM__Output[]> {
    return (await this.call<ListVMsResponse__Output>((o, cb) => this.raw.listVMs({ host }, o, cb))).vms;
  }

  createVm(req: CreateVMRequest): Promise<VM__Output> {
    return this.call<VM__Output>((o, cb) => this.raw.createVm(req, o, cb));
  }

  runVm(vm: string): Promise<VM__Output> {
    return this.call<VM__Output>((o, cb) => this.raw.runVm({ vm }, o, cb));
  }

  async destroyVm(vm: string): Promise<boolean> {
    return (await this.call<DestroyVMResponse__Output>((o, cb) => this.raw.destroyVm({ vm }, o, cb))).destroyed;
  }

  clone(req: CloneVMRequest): Promise<Job__Output> {
    return this.call<Job__Output>((o, cb) => this.raw.cloneVm(req, o, cb));
  }

  job(id: string): Promise<Job__Output> {
    return this.call<Job__Output>((o, cb) => this.raw.getJob({ id }, o, cb));
  }

  /** Cancels a running clone or backup job (the source keeps running). */
  adoptVm(req: AdoptVMRequest): Promise<VM__Output> {
    return this.call<VM__Output>((o, cb) => this.raw.adoptVm(req, o, cb));
  }

  vmStorage(vm: string): Promise<VMStorage__Output> {
    return this.call<VMStorage__Output>((o, cb) => this.raw.getVmStorage({ vm }, o, cb));
  }

  cancelJob(id: string): Promise<Job__Output> {
    return this.call<Job__Output>((o, cb) => this.raw.cancelJob({ id }, o, cb));
  }

  async jobs(limit = 100): Promise<Job__Output[]> {
    return (await this.call<ListJobsResponse__Output>((o, cb) => this.raw.listJobs({ limit }, o, cb))).jobs;
  }

  backup(req: BackupVMRequest): Promise<Job__Output> {
    return this.call<Job__Output>((o, cb) => this.raw.backupVm(req, o, cb));
  }

  async backups(vm = '', limit = 0): Promise<Backup__Output[]> {
    return (await this.call<CatalogResponse__Output>((o, cb) => this.raw.listBackups({ vm, limit }, o, cb))).backups;
  }

  getBackup(id: string): Promise<Backup__Output> {
    return this.call<Backup__Output>((o, cb) => this.raw.getBackup({ id }, o, cb));
  }

  createSnapshot(vm: string, storageOnly = false): Promise<SnapshotPair__Output> {
    return this.call<SnapshotPair__Output>((o, cb) => this.raw.createSnapshot({ vm, storageOnly }, o, cb));
  }

  snapshots(vm = ''): Promise<SnapshotList__Output> {
    return this.call<SnapshotList__Output>((o, cb) => this.raw.listSnapshots({ vm }, o, cb));
  }

  snapshot(id: string): Promise<SnapshotList__Output> {
    return this.call<SnapshotList__Output>((o, cb) => this.raw.getSnapshot({ id }, o, cb));
  }

  revertSnapshot(id: string): Promise<RevertSnapshotResponse__Output> {
    return this.call<RevertSnapshotResponse__Output>((o, cb) => this.raw.revertSnapshot({ id }, o, cb));
  }

  deleteSnapshot(id: string): Promise<DeleteSnapshotResponse__Output> {
    return this.call<DeleteSnapshotResponse__Output>((o, cb) => this.raw.deleteSnapshot({ id }, o, cb));
  }

  checkSnapshots(): Promise<SnapshotCheckReport__Output> {
    return this.call<SnapshotCheckReport__Output>((o, cb) => this.raw.checkSnapshots({}, o, cb));
  }

  restore(req: RestoreBackupRequest): Promise<Job__Output> {
    return this.call<Job__Output>((o, cb) => this.raw.restoreBackup(req, o, cb));
  }

  planRestore(req: RestoreBackupRequest): Promise<RestorePlan__Output> {
    return this.call<RestorePlan__Output>((o, cb) => this.raw.planRestore(req, o, cb));
  }

  addCluster(req: AddClusterRequest): Promise<Cluster__Output> {
    return this.call<Cluster__Output>((o, cb) => this.raw.addCluster(req, o, cb));
  }

  cluster(name: string): Promise<Cluster__Output> {
    return this.call<Cluster__Output>((o, cb) => this.raw.getCluster({ name }, o, cb));
  }

  async clusters(): Promise<Cluster__Output[]> {
    return (await this.call<ListClustersResponse__Output>((o, cb) => this.raw.listClusters({}, o, cb))).clusters;
  }

  removeCluster(name: string): Promise<RemoveClusterResponse__Output> {
    return this.call<RemoveClusterResponse__Output>((o, cb) => this.raw.removeCluster({ name }, o, cb));
  }

  /** Verifies a backup; resolves with the last report (done, with every bad chunk). */
  verify(id: string, onReport?: (r: VerifyReport__Output) => void): Promise<VerifyReport__Output> {
    return new Promise((resolve, reject) => {
      const call = this.raw.verifyBackup({ id }, { deadline: Date.now() + 6 * 3600_000 });
      let last: VerifyReport__Output | undefined;
      call.on('data', (r: VerifyReport__Output) => {
        last = r;
        onReport?.(r);
      });
      call.on('end', () => (last?.done ? resolve(last) : reject(new Error(`verify of ${id} ended without a final report`))));
      call.on('error', (err: Error & { code?: number }) => reject(fromServiceError(err, 'verify')));
    });
  }

  /** Streams events; resolves when the server ends the stream (caught up, unless following). */
  events(req: { all?: boolean; follow?: boolean; startSeq?: number }, onEvent: (e: Event__Output) => void, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const call = this.raw.watchEvents(req);
      signal?.addEventListener('abort', () => call.cancel(), { once: true });
      call.on('data', onEvent);
      call.on('end', () => resolve());
      call.on('error', (err: Error & { code?: number }) => (signal?.aborted ? resolve() : reject(fromServiceError(err, 'events'))));
    });
  }

  /** Polls a job until it completes or fails; `onProgress` sees each change. */
  async waitJob(id: string, onProgress?: (j: Job__Output) => void, timeoutMs = 30 * 60_000): Promise<Job__Output> {
    const end = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const j = await this.job(id);
      const key = `${j.state}/${j.currentRound}/${j.lastRoundPages}/${j.phase}/${j.progress.toFixed(2)}`;
      if (key !== last) onProgress?.(j);
      last = key;
      if (j.state === 'completed' || j.state === 'failed') return j;
      if (Date.now() > end) throw new Error(`job ${id} did not finish within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  close(): void {
    this.raw.close();
  }
}
