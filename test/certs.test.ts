/** The fleet PKI (`doppel certs`) with the real openssl: files and modes, certificates, mutual TLS with node, the CLI. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError } from '../shared/src/errors.js';
import { CERT_ROLES, describeCert, initPki, issueCert, pkiFiles } from '../shared/src/security/pki.js';
import { issueExpiredCert, makeForeignCa, makeTestPki } from './helpers/pki.js';

const run = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

const temps: string[] = [];
async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'doppel-certs-test-'));
  temps.push(d);
  return d;
}
after(async () => {
  await Promise.all(temps.map((d) => rm(d, { recursive: true, force: true })));
});

async function mode(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

test('init creates the CA and the stream-token pair with the right modes, and refuses to overwrite them', async () => {
  const dir = path.join(await tempDir(), 'pki');
  const r = await initPki(dir);
  assert.deepEqual(r, {
    caCert: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca.key'),
    tokenKey: path.join(dir, 'stream-token.key'),
    tokenPub: path.join(dir, 'stream-token.pub'),
  });
  assert.equal(await mode(dir), 0o700);
  assert.equal(await mode(r.caKey), 0o600);
  assert.equal(await mode(r.tokenKey), 0o600);
  assert.equal((await mode(r.caCert)) & 0o077, 0o044, 'ca.pem is readable');

  const ca = new X509Certificate(await readFile(r.caCert));
  assert.equal(ca.ca, true);
  assert.match(ca.subject, /^CN=doppel fleet CA$/m);
  assert.equal(ca.subject, ca.issuer);
  assert.ok(ca.checkPrivateKey(createPrivateKey(await readFile(r.caKey))));
  const days = (new Date(ca.validTo).getTime() - new Date(ca.validFrom).getTime()) / 86_400_000;
  assert.ok(Math.abs(days - 3650) < 1, `CA valid for ${days} days`);
  const text = (await run('openssl', ['x509', '-in', r.caCert, '-noout', '-ext', 'basicConstraints,keyUsage'])).stdout;
  assert.match(text, /Basic Constraints: critical\s+CA:TRUE/);
  assert.match(text, /Certificate Sign, CRL Sign/);
  assert.equal(createPrivateKey(await readFile(r.caKey)).asymmetricKeyDetails?.namedCurve, 'prime256v1');

  const tokenKey = createPrivateKey(await readFile(r.tokenKey));
  const tokenPub = createPublicKey(await readFile(r.tokenPub));
  assert.equal(tokenKey.asymmetricKeyType, 'ed25519');
  assert.match(await readFile(r.tokenKey, 'utf8'), /^-----BEGIN PRIVATE KEY-----/);
  assert.match(await readFile(r.tokenPub, 'utf8'), /^-----BEGIN PUBLIC KEY-----/);
  assert.ok(verify(null, Buffer.from('x'), tokenPub, sign(null, Buffer.from('x'), tokenKey)));

  await assert.rejects(initPki(dir), (e: unknown) => e instanceof AlreadyExistsError && /--force/.test(e.message));
  await initPki(dir, { force: true, days: 30 });
  const ca2 = new X509Certificate(await readFile(r.caCert));
  assert.notEqual(ca2.fingerprint256, ca.fingerprint256);
});

test('issue: a certificate of the CA with CN, OU, SANs and both EKUs as asked; bad input is refused', async () => {
  const dir = await tempDir();
  await assert.rejects(issueCert(dir, 'h1', { role: 'agent' }), (e: unknown) => e instanceof NotFoundError && /doppel certs init/.test(e.message) && e.message.includes(dir));
  await initPki(dir, { force: true });
  const r = await issueCert(dir, 'host-1', { role: 'agent', dns: ['host-1.lan', 'backup.example.com'], ips: ['127.0.0.1', '::1'] });
  assert.deepEqual(r, { cert: path.join(dir, 'host-1.pem'), key: path.join(dir, 'host-1.key') });
  assert.equal(await mode(r.key), 0o600);
  const files = pkiFiles(dir, 'host-1');
  assert.equal(files.cert, r.cert);
  assert.equal(files.key, r.key);
  assert.equal(files.ca, path.join(dir, 'ca.pem'));
  assert.equal(files.tokenKey, path.join(dir, 'stream-token.key'));
  assert.equal(files.tokenPub, path.join(dir, 'stream-token.pub'));

  const v = await run('openssl', ['verify', '-CAfile', files.ca, r.cert]);
  assert.match(v.stdout, /: OK/);
  const info = await describeCert(r.cert);
  assert.equal(info.cn, 'host-1');
  assert.equal(info.ou, 'agent');
  assert.equal(info.subject, 'O=doppel, OU=agent, CN=host-1');
  assert.equal(info.issuer, 'O=doppel, CN=doppel fleet CA');
  assert.deepEqual(info.san, ['DNS:host-1', 'DNS:host-1.lan', 'DNS:backup.example.com', 'IP:127.0.0.1', 'IP:::1']);
  assert.match(info.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  const days = (info.notAfter.getTime() - info.notBefore.getTime()) / 86_400_000;
  assert.ok(Math.abs(days - 825) < 1, `valid for ${days} days`);

  const x = new X509Certificate(await readFile(r.cert));
  assert.equal(x.ca, false);
  assert.deepEqual([...(x.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
  assert.ok(x.checkPrivateKey(createPrivateKey(await readFile(r.key))));
  const ext = (await run('openssl', ['x509', '-in', r.cert, '-noout', '-ext', 'basicConstraints,keyUsage,extendedKeyUsage'])).stdout;
  assert.match(ext, /CA:FALSE/);
  assert.match(ext, /Digital Signature, Key Encipherment/);
  assert.match(ext, /TLS Web Server Authentication, TLS Web Client Authentication/);

  const bad = (e: unknown) => e instanceof InvalidArgumentError;
  await assert.rejects(issueCert(dir, 'no spaces', { role: 'agent' }), bad);
  await assert.rejects(issueCert(dir, '../escape', { role: 'agent' }), bad);
  await assert.rejects(issueCert(dir, 'ca', { role: 'agent' }), bad, "'ca' would overwrite the CA");
  await assert.rejects(issueCert(dir, 'h2', { role: 'agent', ips: ['10.0.0'] }), bad);
  await assert.rejects(issueCert(dir, 'h2', { role: 'agent', dns: ['a,IP:1.2.3.4'] }), bad);
  await assert.rejects(issueCert(dir, 'h2', { role: 'root' as 'agent' }), bad);
  await assert.rejects(issueCert(dir, 'h2', { role: 'agent', days: 0 }), bad);
  assert.deepEqual([...CERT_ROLES], ['agent', 'coordinator', 'repository', 'admin', 'reader']);
});

interface ServerSide {
  authorized: boolean;
  authorizationError: string;
  cn: string;
}

interface Pair {
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

async function pair(dir: string, name: string): Promise<Pair> {
  const f = pkiFiles(dir, name);
  return { ca: await readFile(f.ca), cert: await readFile(f.cert), key: await readFile(f.key) };
}

/** A mutual-TLS server; the lenient one completes every handshake and reports what it thought of the client. */
async function startServer(id: Pair, strict: boolean): Promise<{ port: number; seen: ServerSide[]; clientErrors: Error[]; close: () => Promise<void> }> {
  const seen: ServerSide[] = [];
  const clientErrors: Error[] = [];
  const server = tls.createServer({ ...id, requestCert: true, rejectUnauthorized: strict }, (socket) => {
    const peer = socket.getPeerCertificate();
    seen.push({ authorized: socket.authorized, authorizationError: String(socket.authorizationError ?? ''), cn: String(peer.subject?.CN ?? '') });
    socket.end('hello');
  });
  server.on('tlsClientError', (err) => clientErrors.push(err));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    clientErrors,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Connects, reads to the end; resolves with whether the client trusted the server, or the error. */
function connect(port: number, id: Pair, servername?: string): Promise<{ authorized: boolean; data: string } | { error: NodeJS.ErrnoException }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...id, ...(servername ? { servername } : {}) });
    let data = '';
    let authorized = false;
    socket.on('secureConnect', () => (authorized = socket.authorized));
    socket.on('data', (d: Buffer) => (data += d.toString()));
    socket.on('end', () => resolve({ authorized, data }));
    socket.on('error', (error) => resolve({ error }));
  });
}

let pki: { dir: string; cleanup: () => Promise<void> };
let foreignDir: string;
before(async () => {
  pki = await makeTestPki([
    { name: 'coord', role: 'coordinator', dns: ['coordinator.test'], ips: ['127.0.0.1'] },
    { name: 'agent1', role: 'agent', ips: ['127.0.0.1'] },
  ]);
  foreignDir = await tempDir();
  await Promise.all([issueExpiredCert(pki.dir, 'old', 'agent', { ips: ['127.0.0.1'] }), makeForeignCa(foreignDir, 'agent1', 'agent')]);
});
after(async () => {
  await pki.cleanup();
});

test('node tls: mutual TLS with certificates of the same CA is authorized on both sides, by DNS name and by IP', async () => {
  const srv = await startServer(await pair(pki.dir, 'coord'), false);
  try {
    const client = await pair(pki.dir, 'agent1');
    for (const servername of ['coordinator.test', 'coord', undefined]) {
      const r = await connect(srv.port, client, servername);
      assert.ok(!('error' in r), `connect as ${servername ?? '127.0.0.1'}: ${'error' in r ? r.error.message : ''}`);
      assert.equal(r.authorized, true);
      assert.equal(r.data, 'hello');
      assert.deepEqual(srv.seen.at(-1), { authorized: true, authorizationError: '', cn: 'agent1' });
    }
    const wrongName = await connect(srv.port, client, 'other.test');
    assert.ok('error' in wrongName);
    assert.equal(wrongName.error.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
  } finally {
    await srv.close();
  }
});

test('node tls: an expired certificate and one of a foreign CA are rejected', async () => {
  const lenient = await startServer(await pair(pki.dir, 'coord'), false);
  const strict = await startServer(await pair(pki.dir, 'coord'), true);
  try {
    assert.ok((await describeCert(pkiFiles(pki.dir, 'old').cert)).notAfter < new Date());
    await run('openssl', ['verify', '-CAfile', pkiFiles(pki.dir, 'old').ca, pkiFiles(pki.dir, 'old').cert]).then(
      () => assert.fail('openssl verify accepted an expired certificate'),
      (e: { stderr?: string }) => assert.match(e.stderr ?? '', /certificate has expired/),
    );
    const expired = await pair(pki.dir, 'old');
    const foreign = { ...(await pair(foreignDir, 'agent1')), ca: (await pair(pki.dir, 'agent1')).ca };

    const e1 = await connect(lenient.port, expired, 'coord');
    assert.ok(!('error' in e1) && e1.authorized, 'the client still trusts the server');
    assert.deepEqual(lenient.seen.at(-1), { authorized: false, authorizationError: 'CERT_HAS_EXPIRED', cn: 'old' });
    const f1 = await connect(lenient.port, foreign, 'coord');
    assert.ok(!('error' in f1));
    const last = lenient.seen.at(-1);
    assert.equal(last?.authorized, false);
    assert.equal(last?.cn, 'agent1');
    assert.match(last?.authorizationError ?? '', /UNABLE_TO_GET_ISSUER_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|SELF_SIGNED_CERT_IN_CHAIN|CERT_SIGNATURE_FAILURE/);

    for (const id of [expired, foreign]) {
      const r = await connect(strict.port, id, 'coord');
      assert.ok('error' in r || r.data === '', 'the strict server sends nothing');
    }
    assert.equal(strict.seen.length, 0, 'no handshake completed on the strict server');
    assert.equal(strict.clientErrors.length, 2);

    // The other way round: a client of the foreign CA does not trust our server.
    const trustsForeign = await connect(lenient.port, await pair(foreignDir, 'agent1'), 'coord');
    assert.ok('error' in trustsForeign);
    // Both CAs are named "doppel fleet CA", so OpenSSL may report the name match as a self-signed chain.
    assert.match(String(trustsForeign.error.code), /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_SIGNATURE_FAILURE/);
  } finally {
    await Promise.all([lenient.close(), strict.close()]);
  }
});

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, ['--import', 'tsx', 'cli/src/main.ts', 'certs', ...args], {
      cwd: root,
      env: { ...process.env, ...env },
      timeout: 30_000,
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

test('doppel certs: help, init, issue, show, list (with EXPIRED) and usage errors, end to end', async () => {
  const dir = path.join(await tempDir(), 'pki');
  const env = { DOPPEL_PKI: dir };
  const [help, issueHelp, listHelp, noCa, noArgs] = await Promise.all([
    cli(['--help']),
    cli(['issue', '--help']),
    cli(['list', '--help']),
    cli(['issue', 'h1', '--role', 'agent'], env),
    cli([]),
  ]);
  assert.equal(help.code, 0);
  for (const s of ['init', 'issue NAME --role ROLE', 'show NAME', 'list', 'stream-token.key', 'stream-token.pub', 'ca.key', 'repository', 'reader']) {
    assert.ok(help.stdout.includes(s), `certs --help mentions ${s}`);
  }
  assert.equal(issueHelp.code, 0);
  assert.match(issueHelp.stdout, /--role ROLE +agent \| coordinator \| repository \| admin \| reader/);
  assert.match(issueHelp.stdout, /--ip ADDR/);
  assert.match(issueHelp.stdout, /to the coordinator only/);
  assert.match(listHelp.stdout, /EXPIRED/);
  assert.equal(noCa.code, 1);
  assert.match(noCa.stderr, /NotFoundError: no fleet CA in .*run 'doppel certs init/);
  assert.equal(noArgs.code, 2);

  const init = await cli(['init'], env);
  assert.equal(init.code, 0, init.stderr);
  assert.match(init.stdout, /created the fleet CA in/);
  assert.equal(await mode(dir), 0o700);

  const [issued, badRole, again, noOpenssl] = await Promise.all([
    cli(['issue', 'h1', '--role', 'agent', '--dns', 'h1.lan', '--ip', '10.0.0.1', '--ip', '127.0.0.1', '--days', '30'], env),
    cli(['issue', 'h2', '--role', 'superuser'], env),
    cli(['init'], env),
    cli(['issue', 'h3', '--role', 'reader'], { ...env, PATH: '/nonexistent' }),
  ]);
  assert.equal(issued.code, 0, issued.stderr);
  assert.match(issued.stdout, /issued h1 \(role agent\)/);
  assert.match(issued.stdout, /DNS:h1, DNS:h1\.lan, IP:10\.0\.0\.1, IP:127\.0\.0\.1/);
  assert.equal(badRole.code, 2);
  assert.match(badRole.stderr, /InvalidArgumentError: --role must be one of agent, coordinator, repository, admin, reader \(got "superuser"\)/);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /AlreadyExistsError: .*--force/);
  assert.equal(noOpenssl.code, 1);
  assert.match(noOpenssl.stderr, /openssl is not installed \(apt-get install openssl\)/);
  await run('openssl', ['verify', '-CAfile', path.join(dir, 'ca.pem'), path.join(dir, 'h1.pem')]);

  await issueExpiredCert(dir, 'old', 'agent');
  await copyFile(pkiFiles(foreignDir, 'agent1').cert, path.join(dir, 'stranger.pem'));
  const [show, list, listText] = await Promise.all([cli(['show', 'h1', '--json'], env), cli(['list', '--json', '--dir', dir]), cli(['list'], env)]);
  assert.equal(show.code, 0, show.stderr);
  const s = JSON.parse(show.stdout) as { cn: string; ou: string; san: string[]; status: string; key: string; signedByCa: boolean; notAfter: string };
  assert.equal(s.cn, 'h1');
  assert.equal(s.ou, 'agent');
  assert.deepEqual(s.san, ['DNS:h1', 'DNS:h1.lan', 'IP:10.0.0.1', 'IP:127.0.0.1']);
  assert.equal(s.status, 'ok');
  assert.equal(s.key, 'matches');
  assert.equal(s.signedByCa, true);
  assert.ok(Math.abs(new Date(s.notAfter).getTime() - Date.now() - 30 * 86_400_000) < 86_400_000);

  assert.equal(list.code, 0, list.stderr);
  const l = JSON.parse(list.stdout) as { certs: { name: string; role: string; status: string }[] };
  assert.deepEqual(
    l.certs.map((c) => [c.name, c.role, c.status]),
    [
      ['ca', 'CA', 'ok'],
      ['h1', 'agent', 'ok'],
      ['old', 'agent', 'EXPIRED'],
      ['stranger', 'agent', 'NOT FROM THIS CA'],
    ],
  );
  assert.match(listText.stdout, /^old +old +agent +DNS:old +2020-01-02 +EXPIRED/m);
  assert.match(listText.stdout, /^h1 +h1 +agent +DNS:h1,DNS:h1\.lan,IP:10\.0\.0\.1,IP:127\.0\.0\.1 /m);
});
