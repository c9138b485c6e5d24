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
  encodeJson,
  issueCert,
  newIdentity,
  sendCommand,
  loadDataPlaneProto,
  loadTlsIdentity,
  pkiFiles,
  streamTokenMetadata,
  type DoppelError,
} from '../shared/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { CoordinatorClient } from '../cli/src/client.js';
import { codeOf, driverVm, startTestFleet } from './helpers/fleet.js';
import { PageStream, createDataPlaneClient } from '../agent/src/dataplane/client.js';
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
  return channelCredentials({ kind: 'tls', identity: loadTlsIdentity(fleet.pkiDir, name) }, { name: 'host-b', role: 'agent' });
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
  // No certificate can claim another's fleet name as an extra DNS name (clients also check CN and role).
  await assert.rejects(issueCert(p, 'host-z', { role: 'agent', dns: ['host-b'] }), /fully qualified/);
  // And the agent still serves the real fleet.
  const ok = await verifyCall(asHost('host-a').creds, asHost('host-a').options, token());
  assert.equal(ok.code, status.NOT_FOUND);
});

test('a page stream with the wrong token is refused before it touches its prepared clone; so is a disk stream', async () => {
  const c = fleet.client;
  const vm = await c.createVm({ name: 'victim', host: 'host-a', memoryMib: 16, workload: { dirtyRate: 0, pattern: 'uniform', seed: 1 } });
  const coord = await connectNats(fleet.nats.url, 'test-coordinator', fleet.natsCreds('coordinator'));
  try {
    // A clone target, prepared on host-b as the coordinator would for job job-p.
    const source = driverVm(fleet, 'host-a', vm.id).info('host-a');
    const target = await sendCommand(coord, 'host-b', 'clone.prepare', { jobId: 'job-p', source, name: 'victim-clone', identity: newIdentity('victim-clone') });
    const clone = driverVm(fleet, 'host-b', target.id);
    const before = await clone.memoryHash();
    const addr = (await c.hosts()).find((h) => h.name === 'host-b')!.dataAddr;
    const client = createDataPlaneClient(addr, 'host-b', { kind: 'tls', identity: loadTlsIdentity(fleet.pkiDir, 'host-a') });
    const open = { jobId: 'job-p', targetVmId: target.id, pageSize: 4096, pageCount: 4096, probe: false };
    const sign = (over: Partial<{ job: string; vm: string; dir: 'pages' | 'disk' | 'verify' | 'probe' }>) =>
      fleet.signStreamToken({ job: 'job-p', vm: target.id, src: 'host-a', dst: 'host-b', dir: 'pages', ...over });
    const cases: [string, string, RegExp][] = [
      ['a token for another job', sign({ job: 'job-q' }), /for job job-q/],
      ['a token for another VM', sign({ vm: 'vm-other' }), /for VM vm-other/],
      ['a probe token', sign({ dir: 'probe', job: 'probe', vm: '' }), /probe token cannot open a clone stream/],
      ['a disk token', sign({ dir: 'disk' }), /for a disk stream/],
    ];
    for (const [what, token, why] of cases) {
      const stream = new PageStream(client, 'host-b', 5000, token);
      await stream.write({ open }).catch(() => undefined);
      await assert.rejects(stream.end(), (e: DoppelError) => e.code === 'PERMISSION_DENIED' && why.test(e.message), what);
    }
    // A disk stream with a page token is refused at the door too.
    await assert.rejects(
      new Promise((resolve, reject) => {
        const call = client.streamDisk(streamTokenMetadata(sign({})), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res)));
        call.end();
      }),
      (e: ServiceError) => e.code === status.PERMISSION_DENIED,
    );
    // The clone is still there, still waiting for its stream, its memory untouched.
    assert.equal(driverVm(fleet, 'host-b', target.id), clone);
    assert.equal(await clone.memoryHash(), before);
    client.close();
    await sendCommand(coord, 'host-b', 'vm.destroy', { vmId: target.id });
  } finally {
    await coord.close();
    await c.destroyVm(vm.id);
  }
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
  const foreign = await makeForeignCa(foreignDir, 'admin', 'admin');
  const get = (method: string, p: string, tok?: string, cert?: { cert: Buffer; key: Buffer }) =>
    new Promise<number>((resolve, reject) => {
      const [host, port] = fleet.httpAddr.split(':');
      const req = https.request(
        // The coordinator's certificate is checked by its fleet name.
        { host, port, path: p, method, ca, servername: 'coordinator', ...(cert ?? {}), headers: tok ? { authorization: `Bearer ${tok}` } : {} },
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
  const adminCert = { cert: readFileSync(pkiFiles(fleet.pkiDir, 'admin').cert), key: readFileSync(pkiFiles(fleet.pkiDir, 'admin').key) };
  assert.equal(await get('GET', '/v1/hosts', undefined, adminCert), 200, 'a fleet admin certificate');
  assert.equal(await get('GET', '/v1/hosts', undefined, { cert: readFileSync(foreign.cert), key: readFileSync(foreign.key) }), 401, 'an admin certificate of another CA counts as none');
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
    // What an agent can publish on its own subjects must not let it speak for others.
    const hostB = async () => (await fleet.client.hosts()).find((h) => h.name === 'host-b')!;
    const realB = await hostB();
    agent.publish(SUBJECTS.heartbeat('host-a'), encodeJson({ ...realB, name: 'host-b', dataAddr: '10.66.66.66:7410', status: 'stopping' }));
    const forged = { id: 'bk-forged', vm: 'victim', vmName: 'victim', host: 'host-a', repository: '10.66.66.66:7402', disks: [] };
    agent.publish(SUBJECTS.agentEvent('host-a', 'backup.completed'), encodeJson({ type: 'backup.completed', host: 'host-a', jobId: '', vm: 'victim', backup: forged }));
    agent.publish(SUBJECTS.agentEvent('host-a', 'backup.completed'), encodeJson({ type: 'backup.completed', host: 'host-a', jobId: 'job-nope', vm: 'victim', backup: forged }));
    // Junk that must not jam the job tracker.
    agent.publish(SUBJECTS.agentEvent('host-a', 'junk'), 'not json');
    agent.publish(SUBJECTS.agentEvent('host-a', 'backup.completed'), encodeJson({ type: 'backup.completed', host: 'host-a', jobId: 'x' }));
    await agent.flush();
    await sleep(1500);
    assert.equal((await hostB()).dataAddr, realB.dataAddr, 'a heartbeat naming another host is ignored');
    assert.equal((await hostB()).state, 'up');
    assert.ok(!(await fleet.client.backups()).some((b) => b.id === 'bk-forged'), 'a forged backup.completed does not reach the catalog');
    // And the tracker still follows jobs.
    const vm = await fleet.client.createVm({ name: 'after-junk', host: 'host-a', memoryMib: 16, workload: { dirtyRate: 0, pattern: 'uniform', seed: 2 } });
    const job = await fleet.client.waitJob((await fleet.client.clone({ vm: vm.name, targetHost: 'host-b' })).id, undefined, 60_000);
    assert.equal(job.state, 'completed', job.error);
    // A wrong password never connects.
    await assert.rejects(connectNats(fleet.nats.url, 'x', { user: 'agent-host-a', password: 'wrong' }), /Authorization|auth/i);
  } finally {
    await agent.close();
    await coord.close();
  }
});
