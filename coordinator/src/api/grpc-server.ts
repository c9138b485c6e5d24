/** The coordinator's gRPC API. Every handler maps errors through toServiceError. */
import { Server, type sendUnaryData, type ServerUnaryCall, type ServerWritableStream } from '@grpc/grpc-js';
import { guardHandlers, loadCoordinatorProto, serverCredentials, toServiceError, type Logger, type Transport } from '../../../shared/src/mod.js';
import type { ApiAuth } from './auth.js';
import type { CoordinatorHandlers } from '../../../shared/src/gen/doppel/v1/Coordinator.js';
import type { WatchEventsRequest__Output } from '../../../shared/src/gen/doppel/v1/WatchEventsRequest.js';
import type { Event } from '../../../shared/src/gen/doppel/v1/Event.js';
import type { CoordinatorService } from '../service.js';
import type { BackupId__Output } from '../../../shared/src/gen/doppel/v1/BackupId.js';
import type { VerifyReport } from '../../../shared/src/gen/doppel/v1/VerifyReport.js';
import {
  backupMessage,
  clusterMessage,
  eventMessage,
  planMessage,
  hostMessage,
  jobMessage,
  metadataSnapshotMessage,
  revertMessage,
  snapshotListMessage,
  storageSnapshotMessage,
  vmMessage,
} from './convert.js';

function unary<Req, Res>(fn: (req: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => callback(toServiceError(err)),
    );
  };
}

export function coordinatorHandlers(svc: CoordinatorService, log: Logger): CoordinatorHandlers {
  return {
    ListHosts: unary(async () => ({ hosts: (await svc.listHosts()).map(hostMessage) })),
    ListVMs: unary(async (r) => ({ vms: (await svc.listVms(r.host)).map(vmMessage) })),
    CreateVM: unary(async (r) => vmMessage(await svc.createVm(r))),
    RunVM: unary(async (r) => vmMessage(await svc.runVm(r.vm))),
    DestroyVM: unary((r) => svc.destroyVm(r.vm)),
    CloneVM: unary(async (r) => jobMessage(await svc.cloneVm(r))),
    GetJob: unary(async (r) => jobMessage(await svc.getJob(r.id))),
    CancelJob: unary(async (r) => jobMessage(await svc.cancelJob(r.id))),
    GetVMStorage: unary(async (r) => svc.vmStorage(r.vm)),
    AdoptVM: unary(async (r) => vmMessage(await svc.adoptVm(r))),
    ListJobs: unary(async (r) => ({ jobs: (await svc.listJobs(r.limit)).map(jobMessage) })),
    BackupVM: unary(async (r) => jobMessage(await svc.backupVm(r))),
    ListBackups: unary(async (r) => ({ backups: (await svc.listBackups(r.vm, r.limit)).map(backupMessage) })),
    GetBackup: unary(async (r) => backupMessage(await svc.getBackup(r.id))),
    RestoreBackup: unary(async (r) => jobMessage(await svc.restoreBackup(r))),
    PlanRestore: unary(async (r) => planMessage(await svc.planRestore(r))),
    AddCluster: unary(async (r) => clusterMessage(await svc.addCluster(r))),
    GetCluster: unary(async (r) => clusterMessage(await svc.getCluster(r.name))),
    ListClusters: unary(async () => ({ clusters: (await svc.listClusters()).map(clusterMessage) })),
    RemoveCluster: unary((r) => svc.removeCluster(r.name)),
    CreateSnapshot: unary(async (r) => {
      const p = await svc.snapshots.create(r.vm, r.storageOnly);
      return { storage: storageSnapshotMessage(p.storage), metadata: metadataSnapshotMessage(p.metadata), pauseMs: p.pauseMs };
    }),
    ListSnapshots: unary(async (r) => snapshotListMessage(await svc.snapshots.list(r.vm))),
    GetSnapshot: unary(async (r) => snapshotListMessage(await svc.snapshots.get(r.id))),
    RevertSnapshot: unary(async (r) => revertMessage(await svc.snapshots.revert(r.id))),
    DeleteSnapshot: unary((r) => svc.snapshots.delete(r.id)),
    CheckSnapshots: unary(() => svc.snapshots.check()),
    VerifyBackup(call: ServerWritableStream<BackupId__Output, VerifyReport>) {
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      svc
        .verifyBackup(call.request.id, async (report) => {
          if (!call.write(report)) await drainOrGone(call, 'cancelled', ac.signal);
        })
        .then(
          () => call.end(),
          // A server stream's error status goes out through 'error' (destroy() would drop it).
          (err: unknown) => call.emit('error', toServiceError(err)),
        );
    },
    WatchEvents(call: ServerWritableStream<WatchEventsRequest__Output, Event>) {
      const ac = new AbortController();
      call.on('cancelled', () => ac.abort());
      const r = call.request;
      svc
        .watchEvents(
          { all: r.all, startSeq: r.startSeq, follow: r.follow },
          async (e) => {
            if (!call.write(eventMessage(e))) await drainOrGone(call, 'cancelled', ac.signal);
          },
          ac.signal,
        )
        .then(
          () => call.end(),
          (err: unknown) => {
            log.warn({ err }, 'event watch failed');
            call.emit('error', toServiceError(err));
          },
        );
    },
  };
}

/** Waits for `drain`, or until the peer is gone (so a vanished watcher never pins the loop). */
export function drainOrGone(stream: NodeJS.EventEmitter, goneEvent: string, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off(goneEvent, done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on(goneEvent, done);
    signal.addEventListener('abort', done, { once: true });
    if (signal.aborted) done();
  });
}

export async function startGrpcApi(
  listen: string,
  svc: CoordinatorService,
  log: Logger,
  security: { transport: Transport; auth: ApiAuth },
): Promise<{ server: Server; addr: string }> {
  const proto = loadCoordinatorProto();
  const server = new Server({ 'grpc.max_receive_message_length': 1024 * 1024 });
  const handlers = guardHandlers(coordinatorHandlers(svc, log), (call, method) => security.auth.authorizeGrpc(call, method));
  server.addService(proto.doppel.v1.Coordinator.service, handlers);
  // A client certificate is optional here: API users may authenticate with a bearer token instead.
  const creds = serverCredentials(security.transport, { clientCertOptional: true });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(listen, creds, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { server, addr: `${listen.slice(0, listen.lastIndexOf(':'))}:${port}` };
}
