/**
 * The coordinator: host registry, clone planning, job tracking, and the API.
 * Everything it knows lives in NATS (KV buckets and the events stream), so a
 * restart, or a second coordinator, picks up where the last one was.
 */
import { ClusterStore } from './clusters.js';
import type { Server } from '@grpc/grpc-js';
import type http from 'node:http';
import {
  InvalidArgumentError,
  ensureEventStream,
  jsClient,
  openBuckets,
  shutdownServer,
  type Logger,
  type NatsConnection,
  type StreamTokenSigner,
  type Transport,
} from '../../shared/src/mod.js';
import type { ApiAuth } from './api/auth.js';
import { HostRegistry } from './registry.js';
import { JobStore, JobTracker, failOrphanedJobs, reapFailedClones } from './jobs.js';
import { CoordinatorService } from './service.js';
import { startGrpcApi } from './api/grpc-server.js';
import { startHttpApi } from './api/http-server.js';
import { Catalog } from './catalog.js';
import { startRepositoryServer, type RepositoryServer } from '../../repository/src/mod.js';

export interface CoordinatorOptions {
  /** gRPC API listen address (port 0 picks one). */
  grpcListen?: string;
  /** HTTP/JSON API listen address; '' disables it. */
  httpListen?: string;
  /** Directory of the backup repository this process runs (the default set-up). */
  repoDir?: string;
  /** Listen address of that repository's gRPC service (default 127.0.0.1:7402; port 0 picks one). */
  repoListen?: string;
  /** An external repository (`doppel repo serve`) to use instead: its gRPC address. */
  repository?: string;
  /** The address agents on other hosts dial for the in-process repository (default: its bound address). */
  repoAdvertise?: string;
  /** JetStream replicas of the events stream and the buckets it creates (3 on a three-node cluster). */
  natsReplicas?: number;
}

export interface CoordinatorDeps {
  nc: NatsConnection;
  logger: Logger;
  /** Mutual TLS with the coordinator's identity (API servers, repository client), or plaintext. */
  transport: Transport;
  /** The in-process repository's own transport (its certificate is named 'repository'); default `transport`. */
  repoTransport?: Transport;
  /** Signs the data-plane stream tokens. */
  tokens: StreamTokenSigner;
  /** Who may use the API. */
  auth: ApiAuth;
}

export class Coordinator {
  grpcAddr = '';
  httpAddr = '';
  /** The repository's address, as agents reach it. */
  repoAddr = '';
  private repo: RepositoryServer | undefined;
  private grpc: Server | undefined;
  private orphanTimer: NodeJS.Timeout | undefined;
  private http: http.Server | undefined;

  private constructor(
    readonly service: CoordinatorService,
    private readonly registry: HostRegistry,
    private readonly tracker: JobTracker,
    private readonly log: Logger,
  ) {}

  static async start(opts: CoordinatorOptions, deps: CoordinatorDeps): Promise<Coordinator> {
    const log = deps.logger.child({ component: 'coordinator' });
    await ensureEventStream(deps.nc, opts.natsReplicas ?? 1);
    const buckets = await openBuckets(deps.nc, opts.natsReplicas ?? 1);
    const js = jsClient(deps.nc);
    let repo: RepositoryServer | undefined;
    let repository = opts.repository ?? '';
    if (!repository) {
      if (!opts.repoDir) throw new InvalidArgumentError('the coordinator needs a repository: a directory (--repo-dir) or an address (--repository)');
      repo = await startRepositoryServer({
        dir: opts.repoDir,
        listen: opts.repoListen ?? '127.0.0.1:7402',
        log: log.child({ component: 'repository' }),
        transport: deps.repoTransport ?? deps.transport,
      });
      repository = opts.repoAdvertise || repo.addr;
    }
    const registry = new HostRegistry(deps.nc, js, buckets.hosts, log.child({ component: 'registry' }));
    const jobs = new JobStore(buckets.jobs, deps.nc);
    const catalog = new Catalog(buckets.backups, deps.nc);
    const tracker = new JobTracker(deps.nc, js, jobs, catalog, log.child({ component: 'job-tracker' }));
    const service = new CoordinatorService({
      nc: deps.nc,
      js,
      registry,
      jobs,
      links: buckets.links,
      catalog,
      repository,
      log,
      transport: deps.transport,
      tokens: deps.tokens,
      snapshotMeta: buckets.snapshotMeta,
      snapshotCatalog: buckets.snapshots,
      clusters: new ClusterStore(buckets.clusters, deps.nc, () => registry.list()),
    });
    const c = new Coordinator(service, registry, tracker, log);
    c.repo = repo;
    c.repoAddr = repository;
    registry.start();
    await tracker.start();
    const orphanLog = log.child({ component: 'orphan-check' });
    // Jobs are scanned only when a host's state or agent start time changed since the last look,
    // so a large job history is not listed every two seconds; a full scan still runs every minute.
    let lastHosts = '';
    let lastScan = 0;
    c.orphanTimer = setInterval(() => {
      void (async () => {
        const hosts = await registry.list();
        const key = hosts.map((h) => `${h.name}/${h.state}/${h.startedAt}`).join(',');
        if (key === lastHosts && Date.now() - lastScan < 60_000) return;
        await failOrphanedJobs(
          deps.nc,
          jobs,
          async (name) => {
            const host = hosts.find((h) => h.name === name);
            return { up: host?.state === 'up', startedAt: host?.startedAt ?? '' };
          },
          orphanLog,
        );
        await reapFailedClones(deps.nc, jobs, hosts, orphanLog);
        lastHosts = key;
        lastScan = Date.now();
      })().catch((err: unknown) => orphanLog.debug({ err }, 'orphan check failed'));
    }, 2000);
    const security = { transport: deps.transport, auth: deps.auth };
    const g = await startGrpcApi(opts.grpcListen ?? '127.0.0.1:7400', service, log.child({ component: 'grpc-api' }), security);
    c.grpc = g.server;
    c.grpcAddr = g.addr;
    if (opts.httpListen !== '') {
      const h = await startHttpApi(opts.httpListen ?? '127.0.0.1:7401', service, log.child({ component: 'http-api' }), security);
      c.http = h.server;
      c.httpAddr = h.addr;
    }
    log.info({ grpc: c.grpcAddr, http: c.httpAddr, repository: c.repoAddr, repoDir: opts.repoDir ?? '' }, 'coordinator started');
    return c;
  }

  async stop(): Promise<void> {
    if (this.orphanTimer) clearInterval(this.orphanTimer);
    this.registry.stop();
    await this.tracker.stop();
    this.http?.closeAllConnections();
    await new Promise<void>((r) => (this.http ? this.http.close(() => r()) : r()));
    this.service.stopWatches();
    if (this.grpc) await shutdownServer(this.grpc);
    await this.repo?.stop();
    this.log.info('coordinator stopped');
  }
}
