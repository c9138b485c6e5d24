/**
 * Fleet security on loopback: a fleet with mutual TLS, NATS users with subject
 * permissions and API authentication clones, backs up and restores; then every
 * rejection: data-plane streams without the right certificate or stream token,
 * API callers without the right role, agents on subjects that are not theirs.
 * (The same across network namespaces, with an address per host, is in
 * multihost.test.ts.)
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials, status, type ChannelCredentials, type ServiceError } from '@grpc/grpc-js';
import {
  SUBJECTS,
  channelCredentials,
  connectNats,
  loadDataPlaneProto,
  loadTlsIdentity,
  pkiFiles,
  streamTokenMetadata,
  type DoppelError,
} from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { CoordinatorClient } from '../cli/src/client.js';
import { startTestFleet } from './helpers/fleet.js';
import { issueExpiredCert, makeForeignCa } from './helpers/pki.js';

const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const READER_TOKEN = 'reader-token-0123456789abcdef';

let fleet: LocalFleet;
let foreignDir: string;
before(async () => {
  fleet = await startTestFleet({
    tls: true,
    natsAuth: true,
    apiTokens: [
      { role: 'admin', token: ADMIN_TOKEN },
      { role: 'reader', token: READER_TOKEN },
    ],
  });
  foreignDir = await mkdtemp(path.join(os.tmpdir(), 'doppel-foreign-ca-'));
});
after(async () => {
  await fleet.stop();
  await rm(foreignDir, { recursive: true, force: true });
});

test('with mutual TLS, NATS permissions and API auth on, a live clone, a backup through a clone and a restore all work', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'secure', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 2000, pattern: 'hotset', seed: 9, diskWriteRate: 500 } });
  const clone = await c.waitJob((await c.clone({ vm: vm.name, targetHost: 'host-b', verify: true, onNonConvergence: 'warn' })).id);
  assert.equal(clone.state, 'completed', clone.error);
  assert.equal(clone.stats!.cloneHash, clone.stats!.sourceHash);
  const backup = await c.waitJob((await c.backup({ vm: vm.name, cloneHost: 'host-b', onNonConvergence: 'warn' })).id);
  assert.equal(backup.state, 'completed', backup.error);
  const b = backup.backup!.result!;
  const restore = await c.waitJob((await c.restore({ backup: b.id, toHost: 'host-b', asName: 'secure-restored' })).id);
  assert.equal(restore.state, 'completed', restore.error);
  assert.deepEqual(restore.restore!.diskHashes, b.disks.map((d) => d.contentHash));
  assert.equal((await c.verify(b.id)).bad.length, 0);
});

// ---- the data plane ----

interface DataPlaneAttempt {
  code: number | null;
  message: string;
}

/** One VerifyClone call to host-b's data plane with the given credentials and token; never throws. */
async function verifyCall(creds: ChannelCredentials, options: object, token: string | undefined, jobId = 'job-1', targetVmId = 'vm-1'): Promise<DataPlaneAttempt> {
  const hosts = await fleet.client.hosts();
  const addr = hosts.find((h) => h.name === 'host-b')!.dataAddr;
  const Client = loadDataPlaneProto().doppel.v1.DataPlane;
  const client = new Client(addr, creds, options);
  try {
    return await new Promise<DataPlaneAttempt>((resolve) => {
      client.verifyClone({ jobId, targetVmId }, streamTokenMetadata(token ?? ''), { deadline: Date.now() + 5000 }, (err: ServiceError | null) =>
        resolve(err ? { code: err.code, message: err.details || err.message } : { code: null, message: 'served' }),
      );
    });
  } finally {
    client.close();
  }
}

function asHost(name: string): { creds: ChannelCredentials; options: object } {
  return channelCredentials({ kind: 'tls', identity: loadTlsIdentity(fleet.pkiDir, name) }, 'host-b');
}

const token = (over: Partial<{ job: string; vm: string; src: string; dst: string; dir: 'pages' | 'disk' | 'verify' | 'probe' }> = {}, ttlMs?: number) =>
  fleet.signStreamToken({ job: 'job-1', vm: 'vm-1', src: 'host-a', dst: 'host-b', dir: 'verify', ...over }, ttlMs);

test('the data plane admits a right token from the right host once, and refuses every other stream with PERMISSION_DENIED', async () => {
  const a = asHost('host-a');
  // A right token passes the door; there is no such clone, so the call itself is NOT_FOUND.
  const good = token();
  const first = await verifyCall(a.creds, a.options, good);
  assert.equal(first.code, status.NOT_FOUND, first.message);
  const cases: [string, string | undefined, RegExp][] = [
    ['replayed token', good, /already used/],
    ['missing token', undefined, /without a stream token/],
    ['expired token', token({}, -1000), /expired/],
    ['token for another destination host', token({ dst: 'host-c' }), /for host 'host-c'/],
    ['token for another direction', token({ dir: 'disk' }), /for a disk stream/],
    ['token for another job', token({ job: 'job-2' }), /for job job-2/],
    ['token for another VM', token({ vm: 'vm-2' }), /for VM vm-2/],
    ['token for another source host than the certificate', token({ src: 'host-c' }), /from 'host-c', the caller is 'host-a'/],
    ['forged token', `${good.split('.')[0]}.${Buffer.alloc(64).toString('base64url')}`, /signature/],
  ];
  for (const [what, t, why] of cases) {
    const r = await verifyCall(a.creds, a.options, t);
    assert.equal(r.code, status.PERMISSION_DENIED, `${what}: ${r.message}`);
    assert.match(r.message, why, what);
  }
});

test('the data plane refuses callers without a fleet agent certificate before serving a byte', async () => {
  const p = fleet.pkiDir;
  const ca = readFileSync(pkiFiles(p, 'x').ca);
  const expired = await issueExpiredCert(p, 'host-x', 'agent', { ips: ['127.0.0.1'] });
  const foreign = await makeForeignCa(foreignDir, 'host-a', 'agent', { ips: ['127.0.0.1'] });
  const override = { 'grpc.ssl_target_name_override': 'host-b' };
  const cases: [string, ChannelCredentials, object, number][] = [
    ['no client certificate', credentials.createSsl(ca), override, status.UNAVAILABLE],
    ['a certificate of another CA', credentials.createSsl(ca, readFileSync(foreign.key), readFileSync(foreign.cert)), override, status.UNAVAILABLE],
    ['an expired certificate', credentials.createSsl(ca, readFileSync(expired.key), readFileSync(expired.cert)), override, status.UNAVAILABLE],
    ['a plaintext client', credentials.createInsecure(), {}, status.UNAVAILABLE],
    // A fleet certificate of the wrong role: an operator's admin certificate is no agent.
    ['an admin certificate', asHost('admin').creds, asHost('admin').options, status.PERMISSION_DENIED],
  ];
  for (const [what, creds, options, code] of cases) {
    const r = await verifyCall(creds, options, token());
    assert.equal(r.code, code, `${what}: ${r.message}`);
    assert.notEqual(r.message, 'served', what);
  }
  // And the agent still serves the real fleet.
  const ok = await verifyCall(asHost('host-a').creds, asHost('host-a').options, token());
  assert.equal(ok.code, status.NOT_FOUND);
});

// ---- the API ----

test('the API takes an admin or reader certificate or bearer token; changes need admin', async () => {
  const addr = fleet.grpcAddr;
  const ca = readFileSync(pkiFiles(fleet.pkiDir, 'x').ca);
  const reader = new CoordinatorClient(addr, { ca, token: READER_TOKEN });
  const admin = new CoordinatorClient(addr, { ca, token: ADMIN_TOKEN });
  const anonymous = new CoordinatorClient(addr, { ca });
  const wrongToken = new CoordinatorClient(addr, { ca, token: 'not-a-token-at-all-000' });
  const plaintext = new CoordinatorClient(addr);
  const agentCert = new CoordinatorClient(addr, { identity: loadTlsIdentity(fleet.pkiDir, 'host-a') });
  const codeOf = (p: Promise<unknown>) => p.then(() => 'OK', (e: DoppelError) => e.code);
  try {
    assert.equal((await reader.hosts()).length, 2);
    assert.equal(await codeOf(reader.clone({ vm: 'nope' })), 'PERMISSION_DENIED');
    assert.equal(await codeOf(reader.restore({ backup: 'nope', toHost: 'host-b' })), 'PERMISSION_DENIED');
    assert.equal(await codeOf(reader.destroyVm('nope')), 'PERMISSION_DENIED');
    assert.equal(await codeOf(admin.destroyVm('nope')), 'NOT_FOUND', 'an admin gets through to the request itself');
    assert.equal(await codeOf(anonymous.hosts()), 'UNAUTHENTICATED');
    assert.equal(await codeOf(wrongToken.hosts()), 'UNAUTHENTICATED');
    assert.equal(await codeOf(plaintext.hosts()), 'UNAVAILABLE');
    assert.equal(await codeOf(agentCert.hosts()), 'PERMISSION_DENIED', 'an agent certificate is not an API role');
  } finally {
    for (const c of [reader, admin, anonymous, wrongToken, plaintext, agentCert]) c.close();
  }

  // The HTTP API: the same roles.
  const get = (method: string, p: string, tok?: string) =>
    new Promise<number>((resolve, reject) => {
      const [host, port] = fleet.httpAddr.split(':');
      const req = https.request(
        { host, port, path: p, method, ca, servername: 'coordinator', checkServerIdentity: () => undefined, headers: tok ? { authorization: `Bearer ${tok}` } : {} },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(method === 'POST' ? '{}' : undefined);
    });
  assert.equal(await get('GET', '/v1/hosts', READER_TOKEN), 200);
  assert.equal(await get('GET', '/v1/hosts'), 401);
  assert.equal(await get('POST', '/v1/backups', READER_TOKEN), 403);
  assert.equal(await get('GET', '/healthz'), 200);
});

// ---- NATS ----

test('an agent may use only its own NATS subjects: commands to other agents, other heartbeats and the buckets are refused', async () => {
  const coord = await connectNats(fleet.nats.url, 'test-coordinator', fleet.natsCreds('coordinator'));
  const agent = await connectNats(fleet.nats.url, 'test-agent-a', fleet.natsCreds('host-a'));
  const violations: string[] = [];
  void (async () => {
    for await (const s of agent.status()) if (s.type === 'error') violations.push(String(s.error));
  })();
  try {
    const seen: string[] = [];
    const watched = [SUBJECTS.agentCommand('host-b'), SUBJECTS.heartbeat('host-b'), SUBJECTS.coordinatorEvent('clone.started'), SUBJECTS.agentEvent('host-b', 'backup.completed'), '$KV.doppel-jobs.>'];
    // The real agents publish on some of these subjects too: only the forged payload counts.
    const subs = watched.map((s) => coord.subscribe(s, { callback: (_e, m) => void (m.string() === 'forged' && seen.push(m.subject)) }));
    await coord.flush();
    for (const s of watched) agent.publish(s.replace('>', 'forged'), 'forged');
    await agent.flush();
    await sleep(300);
    assert.deepEqual(seen, [], `the coordinator received forged messages: ${seen.join(', ')}`);
    assert.ok(violations.some((v) => /Permissions Violation for Publish/i.test(v)), `violations reported: ${violations.join('; ')}`);
    subs.forEach((s) => s.unsubscribe());
    // Reading another agent's commands is refused too.
    agent.subscribe(SUBJECTS.agentCommand('host-b'));
    await agent.flush();
    await sleep(200);
    assert.ok(violations.some((v) => /Permissions Violation for Subscription/i.test(v)), `violations reported: ${violations.join('; ')}`);
    // A wrong password never connects.
    await assert.rejects(connectNats(fleet.nats.url, 'x', { user: 'agent-host-a', password: 'wrong' }), /Authorization|auth/i);
  } finally {
    await agent.close();
    await coord.close();
  }
});
