/**
 * A hostile or misconfigured client, run inside a test host's network namespace
 * by multihost.test.ts: one call to a data plane, the coordinator's API, the
 * repository, or NATS, with the credentials the case names. Prints one JSON line:
 * { code, message, served } where `served` counts the messages the server sent.
 *
 *   node --import tsx test/helpers/netns-probe.ts '<json Probe>'
 */
import { readFileSync } from 'node:fs';
import { credentials, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import { connectNats, loadCoordinatorProto, loadDataPlaneProto, loadRepositoryProto, streamTokenMetadata } from '../../shared/src/mod.js';

export type Probe =
  | {
      kind: 'dataplane' | 'coordinator' | 'repository';
      addr: string;
      /** The fleet name the server should present. */
      serverName: string;
      /** PEM file paths; no ca means plaintext. */
      ca?: string;
      cert?: string;
      key?: string;
      token?: string;
      jobId?: string;
      vmId?: string;
    }
  | {
      kind: 'nats';
      url: string;
      /** Publishes as this user... */
      user: string;
      password: string;
      subject: string;
      /** ...while this one listens. */
      watcherUser: string;
      watcherPassword: string;
    };

export interface ProbeResult {
  code: number | string | null;
  message: string;
  served: number;
}

function creds(p: { ca?: string; cert?: string; key?: string }): ChannelCredentials {
  if (!p.ca) return credentials.createInsecure();
  const read = (f?: string) => (f ? readFileSync(f) : null);
  return credentials.createSsl(read(p.ca), read(p.key), read(p.cert));
}

async function grpcProbe(p: Extract<Probe, { addr: string }>): Promise<ProbeResult> {
  const options = p.ca ? { 'grpc.ssl_target_name_override': p.serverName } : {};
  const deadline = { deadline: Date.now() + 5000 };
  const md = streamTokenMetadata(p.token ?? '');
  const done = (resolve: (r: ProbeResult) => void) => (err: ServiceError | null) =>
    resolve(err ? { code: err.code, message: err.details || err.message, served: 0 } : { code: 0, message: 'served', served: 1 });
  if (p.kind === 'dataplane') {
    const c = new (loadDataPlaneProto().doppel.v1.DataPlane)(p.addr, creds(p), options);
    return new Promise((resolve) => c.verifyClone({ jobId: p.jobId ?? 'j', targetVmId: p.vmId ?? 'v' }, md, deadline, done(resolve)));
  }
  if (p.kind === 'coordinator') {
    const c = new (loadCoordinatorProto().doppel.v1.Coordinator)(p.addr, creds(p), options);
    return new Promise((resolve) => c.listHosts({}, md, deadline, done(resolve)));
  }
  const c = new (loadRepositoryProto().doppel.v1.Repository)(p.addr, creds(p), options);
  return new Promise((resolve) => c.listBackups({}, md, deadline, done(resolve)));
}

async function natsProbe(p: Extract<Probe, { kind: 'nats' }>): Promise<ProbeResult> {
  const watcher = await connectNats(p.url, 'probe-watcher', { user: p.watcherUser, password: p.watcherPassword });
  const nc = await connectNats(p.url, 'probe', { user: p.user, password: p.password });
  let served = 0;
  const errors: string[] = [];
  void (async () => {
    for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.error));
  })();
  watcher.subscribe(p.subject, { callback: (_e, m) => void (m.string() === 'probe' && served++) });
  await watcher.flush();
  nc.publish(p.subject, 'probe');
  await nc.flush();
  await new Promise((r) => setTimeout(r, 500));
  await nc.close();
  await watcher.close();
  const violation = errors.find((e) => /Permissions Violation/i.test(e));
  return { code: violation ? 'PERMISSION_VIOLATION' : null, message: violation ?? errors.join('; '), served };
}

const probe = JSON.parse(process.argv[2] ?? '{}') as Probe;
const result = await (probe.kind === 'nats' ? natsProbe(probe) : grpcProbe(probe));
console.log(JSON.stringify(result));
process.exit(0);
