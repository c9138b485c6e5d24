/**
 * The fleet on separate hosts: NATS, the coordinator and three agents each in a
 * network namespace of their own, with an address of their own, talking over a
 * bridge; mutual TLS, NATS users with subject permissions and API tokens on, as
 * in production. A clone and a backup cross hosts; then the negative matrix,
 * each case refused with nothing served. Needs root and iproute2 (CI has both);
 * skips with the reason otherwise.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { status } from '@grpc/grpc-js';
import {
  StreamTokenSigner,
  agentUser,
  coordinatorUser,
  initPki,
  issueCert,
  natsAuthorizationConfig,
  pkiFiles,
  type NatsUser,
} from '../shared/src/mod.js';
import { createNetwork, netnsSupport, startNatsIn, waitForLine, type NetnsNetwork } from './helpers/netns.js';
import { issueExpiredCert, makeForeignCa } from './helpers/pki.js';
import type { Probe, ProbeResult } from './helpers/netns-probe.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const MAIN = path.join(here, '..', 'cli', 'src', 'main.ts');
const PROBE = path.join(here, 'helpers', 'netns-probe.ts');
const AGENTS = ['host-a', 'host-b', 'host-c'];
const READER_TOKEN = 'reader-token-multihost-0123456789';

const support = await netnsSupport();

describe('multi-host fleet in network namespaces', { skip: support.ok ? false : support.reason }, () => {
  let net: NetnsNetwork;
  let pki: string;
  let users: Map<string, NatsUser>;
  let natsUrl = '';
  let coordAddr = '';
  const dataAddr = (h: string) => `${net.hosts[h]!.ip}:7410`;
  const signer = () => StreamTokenSigner.fromFile(pkiFiles(pki, 'x').tokenKey);

  /** `doppel ...` as the admin, from the coordinator's host. */
  async function doppel(...args: string[]): Promise<Record<string, unknown>> {
    const r = await net.exec('coord', process.execPath, [...process.execArgv, MAIN, ...args, '--coordinator', coordAddr, '--pki', pki, '--cert-name', 'admin', '--json'], {
      timeoutMs: 120_000,
    });
    assert.equal(r.code, 0, `doppel ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as Record<string, unknown>;
  }

  async function probe(from: string, p: Probe): Promise<ProbeResult> {
    const r = await net.exec(from, process.execPath, [...process.execArgv, PROBE, JSON.stringify(p)], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `probe failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult;
  }

  before(async () => {
    net = await createNetwork(['nats', 'coord', ...AGENTS]);
    pki = await net.tempDir('pki');
    await initPki(pki);
    const ip = (h: string) => net.hosts[h]!.ip;
    await issueCert(pki, 'coordinator', { role: 'coordinator', ips: [ip('coord')] });
    await issueCert(pki, 'repository', { role: 'repository', ips: [ip('coord')] });
    await issueCert(pki, 'admin', { role: 'admin' });
    for (const h of AGENTS) await issueCert(pki, h, { role: 'agent', ips: [ip(h)] });
    users = new Map([coordinatorUser(), ...AGENTS.map((h) => agentUser(h))].map((u) => [u.user, u]));
    for (const u of users.values()) await writeFile(path.join(pki, `nats-${u.user}.json`), JSON.stringify({ user: u.user, password: u.password }));
    await writeFile(path.join(pki, 'api-tokens'), `reader ${READER_TOKEN}\n`);
    const nats = await startNatsIn(net, 'nats', { configText: natsAuthorizationConfig([...users.values()]) });
    natsUrl = nats.url;

    const repoDir = await net.tempDir('repo');
    const coord = net.spawn('coord', process.execPath, [
      ...process.execArgv, MAIN, 'coordinator', '--nats', natsUrl, '--grpc', `${ip('coord')}:7400`, '--http', `${ip('coord')}:7401`,
      '--repo-dir', repoDir, '--repo-listen', `${ip('coord')}:7402`, '--pki', pki, '--nats-creds', path.join(pki, 'nats-coordinator.json'),
      '--api-tokens', path.join(pki, 'api-tokens'), '--ready-line',
    ]);
    const ready = await waitForLine(coord, (l): l is { ready: true; grpc: string } => typeof l === 'object' && l !== null && 'ready' in l, 60_000);
    coordAddr = ready.grpc;
    for (const h of AGENTS) {
      const data = await net.tempDir(h);
      const agent = net.spawn(h, process.execPath, [
        ...process.execArgv, MAIN, 'agent', '--host', h, '--listen', dataAddr(h), '--data', data, '--nats', natsUrl, '--pki', pki,
        '--nats-creds', path.join(pki, `nats-agent-${h}.json`), '--heartbeat-ms', '500', '--memory-mib', '2048', '--ready-line',
      ]);
      await waitForLine(agent, (l) => typeof l === 'object' && l !== null && 'ready' in l, 60_000);
    }
    const end = Date.now() + 30_000;
    for (;;) {
      const { hosts } = (await doppel('hosts')) as { hosts: { name: string; state: string }[] };
      if (AGENTS.every((h) => hosts.some((x) => x.name === h && x.state === 'up'))) break;
      assert.ok(Date.now() < end, `hosts did not come up: ${JSON.stringify(hosts)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
  });
  after(async () => {
    await net?.cleanup();
  });

  test('a live clone and a backup through a clone cross hosts with mutual TLS on', async () => {
    await doppel('vm', 'create', 'web', '--host', 'host-a', '--memory-mib', '64', '--dirty-rate', '2000', '--disk-write-rate', '200');
    const clone = (await doppel('clone', 'web', '--to', 'host-b', '--verify', '--on-non-convergence', 'warn', '--wait')) as { state: string; error: string; stats: { cloneHash: string; sourceHash: string } };
    assert.equal(clone.state, 'completed', clone.error);
    assert.equal(clone.stats.cloneHash, clone.stats.sourceHash);
    const backup = (await doppel('backup', 'web', '--clone-host', 'host-c', '--on-non-convergence', 'warn', '--wait')) as { state: string; error: string; backup: { result: { id: string; disks: { contentHash: string }[] } } };
    assert.equal(backup.state, 'completed', backup.error);
    const b = backup.backup.result;
    const restore = (await doppel('restore', b.id, '--to', 'host-b', '--as', 'web-restored')) as { state: string; error: string; restore: { diskHashes: string[] } };
    assert.equal(restore.state, 'completed', restore.error);
    assert.deepEqual(restore.restore.diskHashes, b.disks.map((d) => d.contentHash));
  });

  test('the negative matrix: every case is refused and served nothing', async () => {
    const f = (name: string) => pkiFiles(pki, name);
    const tok = (over: { src?: string; dst?: string } = {}, ttlMs?: number) =>
      signer().sign({ job: 'j', vm: 'v', src: 'host-a', dst: 'host-c', dir: 'verify', ...over }, ttlMs);
    const toC = { kind: 'dataplane' as const, addr: dataAddr('host-c'), serverName: 'host-c', jobId: 'j', vmId: 'v' };
    const asA = { ca: f('x').ca, cert: f('host-a').cert, key: f('host-a').key };
    const expired = await issueExpiredCert(pki, 'host-x', 'agent', { ips: [net.hosts['host-a']!.ip] });
    const foreign = await makeForeignCa(await net.tempDir('foreign'), 'host-a', 'agent', { ips: [net.hosts['host-a']!.ip] });

    // The right client, for contrast: through the door, then NOT_FOUND (there is no such clone).
    const ok = await probe('host-a', { ...toC, ...asA, token: tok() });
    assert.equal(ok.code, status.NOT_FOUND, ok.message);

    const replayed = tok();
    await probe('host-a', { ...toC, ...asA, token: replayed });
    const cases: [string, string, Probe, number | string][] = [
      ['no client certificate', 'host-a', { ...toC, ca: f('x').ca, token: tok() }, status.UNAVAILABLE],
      ['a certificate of another CA', 'host-a', { ...toC, ca: f('x').ca, cert: foreign.cert, key: foreign.key, token: tok() }, status.UNAVAILABLE],
      ['an expired certificate', 'host-a', { ...toC, ca: f('x').ca, cert: expired.cert, key: expired.key, token: tok({ src: 'host-x' }) }, status.UNAVAILABLE],
      ["host A's certificate used from host B", 'host-b', { ...toC, ...asA, token: tok() }, status.PERMISSION_DENIED],
      ['a plaintext client', 'host-a', { ...toC, token: tok() }, status.UNAVAILABLE],
      ['a replayed token', 'host-a', { ...toC, ...asA, token: replayed }, status.PERMISSION_DENIED],
      ['an expired token', 'host-a', { ...toC, ...asA, token: tok({}, -1000) }, status.PERMISSION_DENIED],
      ['a token for another host', 'host-a', { ...toC, ...asA, token: tok({ dst: 'host-b' }) }, status.PERMISSION_DENIED],
      ['the repository, with an admin certificate', 'coord', { kind: 'repository', addr: `${net.hosts.coord!.ip}:7402`, serverName: 'repository', ca: f('x').ca, cert: f('admin').cert, key: f('admin').key }, status.PERMISSION_DENIED],
      ['the repository, plaintext', 'host-a', { kind: 'repository', addr: `${net.hosts.coord!.ip}:7402`, serverName: 'repository' }, status.UNAVAILABLE],
      ['the API, without credentials', 'host-a', { kind: 'coordinator', addr: coordAddr, serverName: 'coordinator', ca: f('x').ca }, status.UNAUTHENTICATED],
      ['the API, plaintext', 'host-a', { kind: 'coordinator', addr: coordAddr, serverName: 'coordinator' }, status.UNAVAILABLE],
      [
        'an agent that publishes on a coordinator subject',
        'host-a',
        { kind: 'nats', url: natsUrl, user: 'agent-host-a', password: users.get('agent-host-a')!.password, subject: 'doppel.agent.host-b.cmd', watcherUser: 'coordinator', watcherPassword: users.get('coordinator')!.password },
        'PERMISSION_VIOLATION',
      ],
    ];
    for (const [what, from, p, code] of cases) {
      const r = await probe(from, p);
      assert.equal(r.code, code, `${what}: got ${r.code} (${r.message})`);
      assert.equal(r.served, 0, `${what}: the server served ${r.served} messages`);
    }
    // A reader may look but not change anything.
    const r = await net.exec('coord', process.execPath, [...process.execArgv, MAIN, 'vm', 'destroy', 'web', '--coordinator', coordAddr, '--pki', pki, '--token', READER_TOKEN], { timeoutMs: 60_000 });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /PermissionDenied.*admin/);
  });
});
