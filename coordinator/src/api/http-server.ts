/**
 * The coordinator's JSON-over-HTTP API: the same calls as gRPC, for schedulers
 * and scripts. Errors are `{ "error": { name, code, message } }` with the HTTP
 * status that matches the code.
 */
import http from 'node:http';
import https from 'node:https';
import { InvalidArgumentError, NotFoundError, ResourceExhaustedError, errorToJson, httpStatusOf, toDoppelError, type Logger, type Transport } from '../../../shared/src/mod.js';
import type { ApiAuth } from './auth.js';
import type { CoordinatorService } from '../service.js';
import {
  clusterMessage,
  planMessage,
  backupMessage,
  eventMessage,
  hostMessage,
  jobMessage,
  metadataSnapshotMessage,
  revertMessage,
  snapshotListMessage,
  storageSnapshotMessage,
  vmMessage,
} from './convert.js';
import { drainOrGone } from './grpc-server.js';

const MAX_BODY = 1024 * 1024;

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > MAX_BODY) throw new ResourceExhaustedError(`request body over ${MAX_BODY} bytes`);
    chunks.push(c);
  }
  if (size === 0) return {};
  try {
    const v: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError('request body must be a JSON object', { cause: err });
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** The gRPC call each route stands for: it decides the role a caller needs (see auth.ts). */
const ROUTE_CALLS: Record<string, string> = {
  'GET /v1/hosts': 'ListHosts',
  'GET /v1/vms': 'ListVMs',
  'POST /v1/vms': 'CreateVM',
  'POST /v1/vms/:/:': 'RunVM',
  'POST /v1/vms/:': 'AdoptVM',
  'GET /v1/vms/:/:': 'GetVMStorage',
  'DELETE /v1/vms/:': 'DestroyVM',
  'POST /v1/clone': 'CloneVM',
  'GET /v1/jobs': 'ListJobs',
  'GET /v1/jobs/:': 'GetJob',
  'POST /v1/jobs/:/:': 'CancelJob',
  'POST /v1/backups': 'BackupVM',
  'GET /v1/backups': 'ListBackups',
  'GET /v1/backups/:': 'GetBackup',
  'GET /v1/events': 'WatchEvents',
  'POST /v1/snapshots': 'CreateSnapshot',
  'GET /v1/snapshots': 'ListSnapshots',
  'POST /v1/snapshots/:/:': 'RevertSnapshot',
  'DELETE /v1/snapshots/:': 'DeleteSnapshot',
  'POST /v1/clusters': 'AddCluster',
  'GET /v1/clusters': 'ListClusters',
  'GET /v1/clusters/:': 'GetCluster',
  'DELETE /v1/clusters/:': 'RemoveCluster',
};

function routeCall(route: string, parts: string[]): string {
  if (route === 'POST /v1/backups/:/:') return parts[3] === 'verify' ? 'VerifyBackup' : parts[3] === 'restore-plan' ? 'PlanRestore' : 'RestoreBackup';
  if (route === 'GET /v1/snapshots/:') return parts[2] === 'check' ? 'CheckSnapshots' : 'GetSnapshot';
  return ROUTE_CALLS[route] ?? 'unknown';
}

export function httpHandler(svc: CoordinatorService, log: Logger, auth: ApiAuth): http.RequestListener {
  return (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://x');
      const parts = url.pathname.split('/').filter(Boolean);
      const m = req.method ?? 'GET';
      const route = `${m} /${parts.map((p, i) => (i >= 2 ? ':' : p)).join('/')}`;
      if (route !== 'GET /healthz') auth.authorizeHttp(req, routeCall(route, parts));
      switch (route) {
        case 'GET /healthz':
          return send(res, 200, { ok: true });
        case 'GET /v1/hosts':
          return send(res, 200, { hosts: (await svc.listHosts()).map(hostMessage) });
        case 'GET /v1/vms':
          return send(res, 200, { vms: (await svc.listVms(url.searchParams.get('host') ?? '')).map(vmMessage) });
        case 'POST /v1/vms':
          return send(res, 201, vmMessage(await svc.createVm(await readJson(req))));
        case 'POST /v1/vms/:/:':
          if (parts[3] !== 'run') break;
          return send(res, 200, vmMessage(await svc.runVm(decodeURIComponent(parts[2]!))));
        case 'GET /v1/vms/:/:':
          if (parts[3] !== 'storage') break;
          return send(res, 200, await svc.vmStorage(decodeURIComponent(parts[2]!)));
        case 'POST /v1/vms/:': {
          if (parts[2] !== 'adopt') break;
          const body = (await readJson(req)) as { host?: unknown; qmpSocket?: unknown; name?: unknown };
          const str = (v: unknown) => (typeof v === 'string' ? v : '');
          return send(res, 201, vmMessage(await svc.adoptVm({ host: str(body.host), qmpSocket: str(body.qmpSocket), name: str(body.name) })));
        }
        case 'DELETE /v1/vms/:':
          return send(res, 200, await svc.destroyVm(decodeURIComponent(parts[2]!)));
        case 'POST /v1/clone':
          return send(res, 202, jobMessage(await svc.cloneVm((await readJson(req)) as { vm: string })));
        case 'GET /v1/jobs':
          return send(res, 200, { jobs: (await svc.listJobs(Number(url.searchParams.get('limit') ?? 100))).map(jobMessage) });
        case 'GET /v1/jobs/:':
          return send(res, 200, jobMessage(await svc.getJob(decodeURIComponent(parts[2]!))));
        case 'POST /v1/jobs/:/:':
          if (parts[3] !== 'cancel') break;
          return send(res, 200, jobMessage(await svc.cancelJob(decodeURIComponent(parts[2]!))));
        case 'POST /v1/backups':
          return send(res, 202, jobMessage(await svc.backupVm((await readJson(req)) as { vm: string })));
        case 'GET /v1/backups':
          return send(res, 200, {
            backups: (await svc.listBackups(url.searchParams.get('vm') ?? '', Number(url.searchParams.get('limit') ?? 1000))).map(backupMessage),
          });
        case 'GET /v1/snapshots/:':
          if (parts[2] === 'check') return send(res, 200, await svc.snapshots.check());
          return send(res, 200, snapshotListMessage(await svc.snapshots.get(decodeURIComponent(parts[2]!))));
        case 'POST /v1/clusters':
          return send(res, 201, clusterMessage(await svc.addCluster(await readJson(req))));
        case 'GET /v1/clusters':
          return send(res, 200, { clusters: (await svc.listClusters()).map(clusterMessage) });
        case 'GET /v1/clusters/:':
          return send(res, 200, clusterMessage(await svc.getCluster(decodeURIComponent(parts[2]!))));
        case 'DELETE /v1/clusters/:':
          return send(res, 200, await svc.removeCluster(decodeURIComponent(parts[2]!)));
        case 'GET /v1/backups/:':
          return send(res, 200, backupMessage(await svc.getBackup(decodeURIComponent(parts[2]!))));
        case 'POST /v1/backups/:/:': {
          const id = decodeURIComponent(parts[2]!);
          if (parts[3] === 'restore' || parts[3] === 'restore-plan') {
            const body = (await readJson(req)) as { toHost?: string; toCluster?: string; maps?: string[]; asName?: string; start?: boolean };
            if (parts[3] === 'restore-plan') return send(res, 200, planMessage(await svc.planRestore({ ...body, backup: id })));
            return send(res, 202, jobMessage(await svc.restoreBackup({ ...body, backup: id })));
          }
          if (parts[3] !== 'verify') break;
          // An unknown backup is a 404, answered before the stream starts.
          await svc.getBackup(id);
          // Newline-delimited JSON: progress reports, the last one with done = true and every bad chunk.
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          const ac = new AbortController();
          res.on('close', () => ac.abort());
          await svc.verifyBackup(id, async (r) => {
            if (!res.write(JSON.stringify(r) + '\n')) await drainOrGone(res, 'close', ac.signal);
          });
          res.end();
          return;
        }
        case 'POST /v1/snapshots': {
          const body = (await readJson(req)) as { vm?: string; storageOnly?: boolean };
          const p = await svc.snapshots.create(String(body.vm ?? ''), body.storageOnly === true);
          return send(res, 201, { storage: storageSnapshotMessage(p.storage), metadata: metadataSnapshotMessage(p.metadata), pauseMs: p.pauseMs });
        }
        case 'GET /v1/snapshots':
          return send(res, 200, snapshotListMessage(await svc.snapshots.list(url.searchParams.get('vm') ?? '')));
        case 'POST /v1/snapshots/:/:':
          if (parts[3] !== 'revert') break;
          return send(res, 200, revertMessage(await svc.snapshots.revert(decodeURIComponent(parts[2]!))));
        case 'DELETE /v1/snapshots/:':
          return send(res, 200, await svc.snapshots.delete(decodeURIComponent(parts[2]!)));
        case 'GET /v1/events': {
          // Newline-delimited JSON; ?follow=1 keeps the response open for new events.
          const follow = url.searchParams.get('follow') === '1';
          res.writeHead(200, { 'content-type': 'application/x-ndjson' });
          const ac = new AbortController();
          res.on('close', () => ac.abort());
          await svc.watchEvents({ all: true, follow, startSeq: Number(url.searchParams.get('start') ?? 0) }, async (e) => {
            if (!res.write(JSON.stringify(eventMessage(e)) + '\n')) await drainOrGone(res, 'close', ac.signal);
          }, ac.signal);
          res.end();
          return;
        }
      }
      throw new NotFoundError(`no route ${m} ${url.pathname}`);
    })().catch((err: unknown) => {
      const e = toDoppelError(err);
      if (e.code === 'INTERNAL') log.error({ err }, 'HTTP request failed');
      if (res.headersSent) return res.destroy();
      send(res, httpStatusOf(e.code), { error: errorToJson(e) });
    });
  };
}

/** Plain HTTP, or HTTPS with the coordinator's certificate (client certificates optional: tokens work too). */
export async function startHttpApi(
  listen: string,
  svc: CoordinatorService,
  log: Logger,
  security: { transport: Transport; auth: ApiAuth },
): Promise<{ server: http.Server; addr: string }> {
  const handler = httpHandler(svc, log, security.auth);
  const t = security.transport;
  const server: http.Server =
    t.kind === 'tls'
      ? https.createServer({ key: t.identity.key, cert: t.identity.cert, ca: t.identity.ca, requestCert: true, rejectUnauthorized: false }, handler)
      : http.createServer(handler);
  const i = listen.lastIndexOf(':');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(listen.slice(i + 1)), listen.slice(0, i), () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : 0;
  return { server, addr: `${listen.slice(0, i)}:${port}` };
}
