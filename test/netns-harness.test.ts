/** The network-namespace harness itself: isolation between hosts and from the root namespace, NATS inside a namespace, cleanup. */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import {
  cleanupStaleNetns,
  createNetwork,
  findIpBin,
  netnsSupport,
  startNatsIn,
  tcpFirstLine,
  waitForLine,
  type NetnsNetwork,
} from './helpers/netns.js';

const support = await netnsSupport();
const skip = support.ok ? false : support.reason;

function ipOut(args: string[]): string {
  return execFileSync(findIpBin() ?? 'ip', args, { encoding: 'utf8' });
}

function netnsNames(): string[] {
  return ipOut(['netns', 'list'])
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n !== '');
}

/**
 * Connects from the test process (root namespace) and collects what the peer
 * sends within timeoutMs. A sandbox may transparently proxy outbound TCP (the
 * connect then "succeeds" against the proxy), so reaching *our* server is
 * judged by the greeting it sends at once, not by the connect itself.
 */
function greetingFromRoot(host: string, port: number, timeoutMs: number): Promise<{ outcome: string; data: string }> {
  return new Promise((resolve) => {
    let outcome = 'timeout';
    let data = '';
    const s = net.connect({ host, port });
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve({ outcome, data });
    };
    const timer = setTimeout(done, timeoutMs);
    s.setEncoding('utf8');
    s.once('connect', () => (outcome = 'connected'));
    s.on('data', (d: string) => (data += d));
    s.once('end', done);
    s.once('error', (err: NodeJS.ErrnoException) => {
      outcome = err.code ?? err.message;
      done();
    });
  });
}

/** A TCP server on 0.0.0.0 that answers each connection with the peer address it saw. */
const ECHO_PEER_SERVER = `
const net = require('node:net');
const srv = net.createServer((s) => s.end(JSON.stringify({ peer: s.remoteAddress }) + '\\n'));
srv.listen(0, '0.0.0.0', () => console.log(JSON.stringify({ ready: true, port: srv.address().port })));
`;

/** Prints the first line a TCP server sends. */
const CLIENT = `
const s = require('node:net').connect({ host: process.argv[1], port: Number(process.argv[2]) });
s.setEncoding('utf8');
let buf = '';
s.on('data', (d) => { buf += d; });
s.on('end', () => { console.log(buf.split('\\n')[0]); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

function isReady(l: unknown): l is { ready: true; port: number } {
  return typeof l === 'object' && l !== null && (l as { ready?: unknown }).ready === true && typeof (l as { port?: unknown }).port === 'number';
}

describe('netns harness', { skip }, () => {
  let nw: NetnsNetwork;

  before(async () => {
    await cleanupStaleNetns();
    nw = await createNetwork(['nats', 'host-a', 'host-b']);
  });

  after(async () => {
    await nw?.cleanup();
  });

  test('each host has its own namespace and address in one private /24, and nothing lands in the root namespace', async () => {
    const hosts = Object.values(nw.hosts);
    assert.equal(hosts.length, 3);
    assert.equal(new Set(hosts.map((h) => h.ns)).size, 3);
    assert.equal(new Set(hosts.map((h) => h.ip)).size, 3);
    const prefix = nw.subnet.replace(/\.0\/24$/, '.');
    for (const h of hosts) assert.ok(h.ip.startsWith(prefix), `${h.ip} in ${nw.subnet}`);
    const listed = netnsNames();
    for (const ns of nw.namespaces) assert.ok(listed.includes(ns), `${ns} exists`);

    // Inside host-a: loopback plus its own address, nothing else.
    const r = await nw.exec('host-a', process.execPath, ['-e', 'console.log(JSON.stringify(require("node:os").networkInterfaces()))']);
    assert.equal(r.code, 0, r.stderr);
    const ifs = JSON.parse(r.stdout) as Record<string, Array<{ address: string; family: string }>>;
    const v4 = Object.values(ifs)
      .flat()
      .filter((a) => a.family === 'IPv4')
      .map((a) => a.address)
      .sort();
    assert.deepEqual(v4, ['127.0.0.1', nw.host('host-a').ip].sort());

    // The root namespace has no interface of ours and no route into the subnet.
    assert.ok(!ipOut(['-o', 'link', 'show']).includes(nw.runId), 'no harness interface in the root namespace');
    assert.ok(!ipOut(['-4', 'route', 'show', 'table', 'all']).includes(prefix), 'no route to the subnet in the root namespace');
  });

  test('host-a reaches host-b over TCP; the root namespace cannot', async () => {
    const server = nw.spawn('host-b', process.execPath, ['-e', ECHO_PEER_SERVER]);
    const { port } = await waitForLine(server, isReady, 5000);

    const client = nw.spawn('host-a', process.execPath, ['-e', CLIENT, nw.host('host-b').ip, String(port)]);
    const reply = await waitForLine(client, (l) => typeof l === 'object' && l !== null && 'peer' in l, 5000);
    assert.deepEqual(reply, { peer: nw.host('host-a').ip });

    const t0 = Date.now();
    const fromRoot = await greetingFromRoot(nw.host('host-b').ip, port, 1000);
    assert.doesNotMatch(fromRoot.data, /peer/, `root namespace reached host-b (${fromRoot.outcome})`);
    assert.ok(Date.now() - t0 < 2000);

    server.kill();
  });

  test('nats-server runs in one namespace and a client in another reads its INFO line', async () => {
    const nats = await startNatsIn(nw, 'nats', { configText: 'server_name: "dpt-harness-test"\n' });
    assert.equal(nats.url, `nats://${nw.host('nats').ip}:4222`);

    const line = await tcpFirstLine(nw, 'host-a', nw.host('nats').ip, nats.port, 3000);
    assert.match(line, /^INFO /);
    const info = JSON.parse(line.slice('INFO '.length)) as { server_name?: string; port?: number; jetstream?: boolean };
    assert.equal(info.server_name, 'dpt-harness-test');
    assert.equal(info.port, 4222);
    assert.equal(info.jetstream, true);

    const fromRoot = await greetingFromRoot(nw.host('nats').ip, nats.port, 1000);
    assert.doesNotMatch(fromRoot.data, /dpt-harness-test/, `root namespace reached nats-server (${fromRoot.outcome})`);

    await nats.stop();
    assert.ok(nats.process.exitCode !== null || nats.process.signalCode !== null, 'nats-server stopped');
    assert.ok(!existsSync(nats.storeDir), 'store removed');
  });

  test('waitForLine rejects with the stderr tail when the process exits first, and on timeout', async () => {
    const dies = nw.spawn('host-a', process.execPath, ['-e', 'console.error("boom: bad config"); process.exit(3)']);
    await assert.rejects(waitForLine(dies, () => true, 5000), /code 3[\s\S]*boom: bad config/);
    const silent = nw.spawn('host-a', process.execPath, ['-e', 'console.error("still starting"); setTimeout(() => {}, 10000)']);
    await assert.rejects(waitForLine(silent, () => true, 300), /timed out[\s\S]*still starting/);
    silent.kill('SIGKILL');
  });
});

test('cleanup kills every process (SIGKILL for those ignoring SIGTERM), deletes every namespace and temp dir, and is idempotent', { skip }, async () => {
  const nw = await createNetwork(['solo', 'other'], { subnet: '10.250.7.0/24' });
  assert.equal(nw.host('other').ip, '10.250.7.2');
  const sleeper = nw.spawn('solo', process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  const stubborn = nw.spawn('other', process.execPath, [
    '-e',
    'process.on("SIGTERM", () => {}); console.log(JSON.stringify({ ready: true, port: 0 })); setInterval(() => {}, 1000)',
  ]);
  await waitForLine(stubborn, isReady, 5000);
  const nats = await startNatsIn(nw, 'solo', { port: 4333 });
  const dir = await nw.tempDir('scratch');
  assert.ok(existsSync(dir));
  assert.ok(nw.namespaces.every((ns) => netnsNames().includes(ns)));

  const t0 = Date.now();
  await nw.cleanup();
  const took = Date.now() - t0;
  assert.ok(took >= 2500 && took < 6000, `SIGKILL after the 3 s grace (took ${took} ms)`);

  for (const c of [sleeper, stubborn, nats.process]) assert.ok(c.exitCode !== null || c.signalCode !== null, `pid ${c.pid} gone`);
  assert.equal(stubborn.signalCode, 'SIGKILL');
  const left = netnsNames();
  for (const ns of nw.namespaces) assert.ok(!left.includes(ns), `${ns} deleted`);
  assert.ok(!existsSync(dir), 'temp dir removed');
  assert.ok(!existsSync(nats.storeDir), 'nats store removed');

  await nw.cleanup();
  await nats.stop();
  assert.throws(() => nw.spawn('solo', process.execPath, ['-e', '']), /cleaned up/);
});
