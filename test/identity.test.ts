/**
 * VM identity (UUID, MAC, hostname, machine id): the shared checks, the sim driver's records, and on a real
 * fleet: unique MACs at create, a new identity for every clone and restore, and no second running VM with a MAC.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MAC_PREFIX,
  connectNats,
  hostnameFromName,
  newIdentity,
  normalizeMac,
  sendCommand,
  validateIdentity,
  validateVmSpec,
  type DoppelError,
  type NatsConnection,
  type VmIdentity,
  type VmSpec,
} from '../shared/src/mod.js';
import { SimDriver } from '../agent/src/mod.js';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import type { VM } from '../cli/src/client.js';
import { codeOf, driverVm, startTestFleet } from './helpers/fleet.js';

const MAC = /^52:54:00(:[0-9a-f]{2}){3}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MACHINE_ID = /^[0-9a-f]{32}$/;

const GOOD: VmIdentity = { uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', mac: '52:54:00:12:34:56', hostname: 'web-1', machineId: 'a'.repeat(32) };

/** The identity an API VM message carries (flat fields). */
function idOf(v: VM): VmIdentity {
  return { uuid: v.uuid, mac: v.mac, hostname: v.hostname, machineId: v.machineId };
}

function assertAllNew(a: VmIdentity, b: VmIdentity, what: string): void {
  assert.notEqual(a.uuid, b.uuid, `${what}: new UUID`);
  assert.notEqual(a.mac, b.mac, `${what}: new MAC`);
  assert.notEqual(a.machineId, b.machineId, `${what}: new machine id`);
}

test('newIdentity: a random UUID, a unicast MAC under 52:54:00 outside the taken set, a machine id, the hostname', () => {
  const a = newIdentity('web');
  assert.match(a.uuid, UUID);
  assert.match(a.mac, MAC);
  assert.equal(MAC_PREFIX, '52:54:00');
  assert.match(a.machineId, MACHINE_ID);
  assert.equal(a.hostname, 'web');
  assert.deepEqual(validateIdentity(a), a, 'a new identity passes its own check');
  const taken = new Set<string>();
  for (let i = 0; i < 2000; i++) taken.add(newIdentity('x').mac);
  for (let i = 0; i < 200; i++) assert.ok(!taken.has(newIdentity('x', taken).mac));
  const b = newIdentity('web');
  assert.notEqual(a.uuid, b.uuid);
  assert.notEqual(a.machineId, b.machineId);
  // VM names may hold '_' and end with '-'; hostnames may not.
  assert.equal(hostnameFromName('db_main'), 'db-main');
  assert.equal(hostnameFromName('x-'), 'x');
  assert.equal(newIdentity('db_main').hostname, 'db-main');
});

test('validateIdentity and normalizeMac: canonical forms, clear refusals', () => {
  assert.deepEqual(
    validateIdentity({ ...GOOD, uuid: GOOD.uuid.toUpperCase(), mac: '52-54-00-AB-CD-EF', machineId: 'A'.repeat(32) }),
    { ...GOOD, mac: '52:54:00:ab:cd:ef', machineId: 'a'.repeat(32) },
  );
  assert.equal(normalizeMac('02:00:00:00:00:01'), '02:00:00:00:00:01', 'any unicast MAC, not only 52:54:00');
  const refused = (input: unknown, why: RegExp) =>
    assert.throws(() => validateIdentity(input, 'identity'), (e: DoppelError) => e.code === 'INVALID_ARGUMENT' && why.test(e.message), String(why));
  refused(null, /identity must be an object/);
  refused({ ...GOOD, uuid: 'not-a-uuid' }, /identity\.uuid must be a UUID.*"not-a-uuid"/);
  refused({ ...GOOD, mac: '52:54:00:12:34' }, /identity\.mac must be a MAC address of six hex octets/);
  refused({ ...GOOD, mac: '52:54:00:12:34:5g' }, /six hex octets/);
  refused({ ...GOOD, mac: '01:00:5e:00:00:01' }, /identity\.mac must be a unicast MAC address.*multicast/);
  refused({ ...GOOD, mac: 'ff:ff:ff:ff:ff:ff' }, /unicast/);
  refused({ ...GOOD, mac: '00:00:00:00:00:00' }, /all zeros/);
  refused({ ...GOOD, hostname: '-web' }, /identity\.hostname must be an RFC 1123 label/);
  refused({ ...GOOD, hostname: 'web_1' }, /RFC 1123/);
  refused({ ...GOOD, hostname: 'a'.repeat(64) }, /1-63/);
  refused({ ...GOOD, hostname: '' }, /RFC 1123/);
  refused({ ...GOOD, machineId: 'abc' }, /identity\.machineId must be 32 hex characters/);
  refused({ ...GOOD, machineId: '0'.repeat(32) }, /not all zeros/);

  const spec = { name: 'v', memoryMib: 16 };
  assert.equal('identity' in validateVmSpec(spec), false, 'a spec without an identity stays without');
  assert.deepEqual(validateVmSpec({ ...spec, identity: { ...GOOD, mac: '52:54:00:12:34:56'.toUpperCase() } }).identity, GOOD);
  assert.throws(() => validateVmSpec({ ...spec, identity: { ...GOOD, mac: 'x' } }), /identity\.mac/);
});

test('sim driver: a VM gets an identity at create, kept in vm.json; one recorded without gets one at load, written back', async () => {
  const root = mkdtempSync(join(tmpdir(), 'doppel-identity-'));
  const spec: VmSpec = { name: 'old_vm', memoryMib: 8, vcpus: 1, workload: { dirtyRate: 0, pattern: 'uniform', seed: 1, diskWriteRate: 0 }, disks: [] };
  try {
    let d = new SimDriver({ dataDir: root });
    const vm = await d.create(spec);
    const made = vm.info('h').identity;
    assert.match(made.mac, MAC);
    assert.equal(made.hostname, 'old-vm');
    const given = await d.create({ ...spec, name: 'given', identity: GOOD });
    assert.deepEqual(given.info('h').identity, GOOD, 'a given identity is kept');
    await d.close();

    const file = join(root, 'vms', vm.id, 'vm.json');
    assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { spec: VmSpec }).spec.identity, made, 'recorded with the spec');
    d = new SimDriver({ dataDir: root });
    await d.load();
    assert.deepEqual(d.get(vm.id)?.info('h').identity, made, 'the same identity after a restart');
    await d.close();

    // A record from before identities.
    const rec = JSON.parse(readFileSync(file, 'utf8')) as { spec: Partial<VmSpec> };
    delete rec.spec.identity;
    writeFileSync(file, JSON.stringify(rec));
    d = new SimDriver({ dataDir: root });
    await d.load();
    const filled = d.get(vm.id)?.info('h').identity;
    assert.ok(filled);
    assert.match(filled.mac, MAC);
    assert.notEqual(filled.mac, GOOD.mac, 'not the MAC of the other VM on the host');
    assert.deepEqual((JSON.parse(readFileSync(file, 'utf8')) as { spec: VmSpec }).spec.identity, filled, 'the record is rewritten with it');
    assert.deepEqual(readdirSync(join(root, 'vms')).sort(), [vm.id, given.id].sort());
    await d.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

let fleet: LocalFleet;
let nc: NatsConnection;
before(async () => {
  fleet = await startTestFleet();
  nc = await connectNats(fleet.nats.url, 'identity-test', fleet.natsCreds('coordinator'));
});
after(async () => {
  await nc.close();
  await fleet.stop();
});

const small = { memoryMib: 16, workload: { dirtyRate: 200, pattern: 'uniform', seed: 7 }, disks: [{ name: 'disk0', sizeMib: 8, image: 'base' }] };

test('created VMs: distinct UUIDs, MACs and machine ids; hostname and MAC as given; a used MAC refused naming its VM', async () => {
  const c = fleet.client;
  const a = await c.createVm({ name: 'id-a', host: 'host-a', ...small });
  const b = await c.createVm({ name: 'id-b', host: 'host-b', ...small });
  for (const v of [a, b]) {
    assert.match(v.uuid, UUID);
    assert.match(v.mac, MAC);
    assert.match(v.machineId, MACHINE_ID);
    assert.equal(v.hostname, v.name, 'the hostname defaults to the name');
  }
  assertAllNew(idOf(a), idOf(b), 'two VMs');
  assert.deepEqual(driverVm(fleet, 'host-a', a.id).spec.identity, idOf(a), 'the agent keeps what the coordinator reports');

  const g = await c.createVm({ name: 'id-given', host: 'host-b', ...small, hostname: 'Mail-1', mac: '52:54:00:AA:BB:01' });
  assert.equal(g.hostname, 'Mail-1');
  assert.equal(g.mac, '52:54:00:aa:bb:01', 'stored in canonical form');

  // Used by a VM on another host, or just handed out (not yet in a heartbeat): refused either way.
  await assert.rejects(c.createVm({ name: 'id-dup', host: 'host-b', ...small, mac: a.mac.toUpperCase() }), (e: DoppelError) => {
    assert.equal(e.code, 'ALREADY_EXISTS');
    assert.match(e.message, new RegExp(`MAC address ${a.mac} is already used by vm 'id-a' \\(${a.id}\\) on host 'host-a'`));
    return true;
  });
  assert.equal(await codeOf(c.createVm({ name: 'id-dup', ...small, mac: g.mac })), 'ALREADY_EXISTS');
  await assert.rejects(c.createVm({ name: 'id-bad', ...small, mac: '01:00:5e:00:00:01' }), /unicast/);
  await assert.rejects(c.createVm({ name: 'id-bad', ...small, hostname: 'no_underscores' }), /RFC 1123/);
  assert.equal((await c.vms()).some((v) => v.name === 'id-dup' || v.name === 'id-bad'), false, 'nothing was created');

  // The HTTP API takes the same fields and gives the same refusal.
  const res = await fetch(`http://${fleet.httpAddr}/v1/vms`, { method: 'POST', body: JSON.stringify({ name: 'id-http', ...small, mac: a.mac }) });
  assert.equal(res.status, 409);
  assert.match(((await res.json()) as { error: { message: string } }).error.message, /already used by vm 'id-a'/);
  for (const v of [a, b, g]) await c.destroyVm(v.id);
});

test('a pre-copy clone gets a new UUID, MAC and machine id; its hostname is its name or the one asked', async () => {
  const c = fleet.client;
  const src = await c.createVm({ name: 'id-src', host: 'host-a', ...small });
  const j1 = await c.waitJob((await c.clone({ vm: src.name, targetHost: 'host-b', cloneName: 'id-src-copy' })).id);
  assert.equal(j1.state, 'completed', j1.error);
  const j2 = await c.waitJob((await c.clone({ vm: src.name, targetHost: 'host-b', cloneName: 'id-src-copy2', hostname: 'replica' })).id);
  assert.equal(j2.state, 'completed', j2.error);
  await assert.rejects(c.clone({ vm: src.name, targetHost: 'host-b', hostname: 'bad_name' }), /RFC 1123/);

  const vms = await c.vms();
  const c1 = vms.find((v) => v.id === j1.plan!.targetVm)!;
  const c2 = vms.find((v) => v.id === j2.plan!.targetVm)!;
  assert.equal(c1.hostname, 'id-src-copy');
  assert.equal(c2.hostname, 'replica');
  assertAllNew(idOf(src), idOf(c1), 'first clone');
  assertAllNew(idOf(src), idOf(c2), 'second clone');
  assertAllNew(idOf(c1), idOf(c2), 'the clones');
  assert.deepEqual(idOf(vms.find((v) => v.id === src.id)!), idOf(src), 'the source keeps its identity');
  assert.deepEqual(driverVm(fleet, 'host-b', c2.id).spec.identity, idOf(c2));
  // Both clones can run beside the source: their MACs differ.
  for (const v of [c1, c2]) assert.equal((await c.runVm(v.id)).state, 'running');
  for (const v of [src, c1, c2]) await c.destroyVm(v.id);
});

test('a VM is not run while another running VM has its MAC: refused by the coordinator (fleet) and by the agent (host)', async () => {
  const c = fleet.client;
  const src = await c.createVm({ name: 'id-run', host: 'host-a', ...small });
  const spec: VmSpec = { ...validateVmSpec({ ...src, name: 'twin' }), identity: { ...newIdentity('twin'), mac: src.mac } };
  // Twins made on the hosts themselves (a VM directory copied by hand does this): suspended, the source's MAC.
  const twinB = await fleet.agentObjects.get('host-b')!.driver.create({ ...spec, name: 'twin-b' }, { restore: true });
  const twinA = await fleet.agentObjects.get('host-a')!.driver.create({ ...spec, name: 'twin-a' }, { restore: true });
  for (const h of ['host-a', 'host-b']) fleet.agentObjects.get(h)!.heartbeat('up');
  for (let i = 0; i < 100 && (await c.vms()).filter((v) => v.name.startsWith('twin-')).length < 2; i++) await new Promise((r) => setTimeout(r, 50));

  await assert.rejects(c.runVm('twin-b'), (e: DoppelError) => {
    assert.equal(e.code, 'FAILED_PRECONDITION');
    assert.match(e.message, new RegExp(`vm 'twin-b' has MAC address ${src.mac}, which vm 'id-run' \\(${src.id}\\) already uses, running on host 'host-a'`));
    return true;
  });
  // The agent checks its own host too (asked directly, as the coordinator would).
  await assert.rejects(sendCommand(nc, 'host-a', 'vm.run', { vmId: twinA.id }), (e: DoppelError) => {
    assert.equal(e.code, 'FAILED_PRECONDITION');
    assert.match(e.message, /vm 'twin-a' has MAC address .* which vm 'id-run' .* already uses, running on host 'host-a'/);
    return true;
  });
  assert.equal(twinA.state, 'suspended');
  assert.equal(twinB.state, 'suspended');

  // Once the source is gone, one twin may run; then the other is refused in its turn.
  await c.destroyVm(src.id);
  assert.equal((await c.runVm('twin-b')).state, 'running');
  assert.equal(await codeOf(sendCommand(nc, 'host-a', 'vm.run', { vmId: twinA.id })), 'OK', 'the agent sees only its own host');
  await c.destroyVm(twinA.id);
  await c.destroyVm(twinB.id);
});

test('a restore and a backup clone get new identities (a restore\'s hostname is its name); the backup keeps the source\'s', async () => {
  const c = fleet.client;
  const src = await c.createVm({ name: 'id-bk', host: 'host-a', ...small, hostname: 'db' });
  const direct = await c.waitJob((await c.backup({ vm: src.name, direct: true })).id);
  assert.equal(direct.state, 'completed', direct.error);
  const backup = await c.getBackup(direct.backup!.backupId);
  assert.deepEqual(idOf(backup.spec!), idOf(src), 'the backup records the source\'s identity');

  const rj = await c.waitJob((await c.restore({ backup: backup.id, toHost: 'host-b', asName: 'id-bk-restored', start: true })).id);
  assert.equal(rj.state, 'completed', rj.error);
  const restored = (await c.vms()).find((v) => v.name === 'id-bk-restored')!;
  assertAllNew(idOf(src), idOf(restored), 'restore');
  assert.equal(restored.hostname, 'id-bk-restored');
  assert.equal(restored.state, 'running', 'runs beside the source');

  // A backup through a live clone: the clone is another machine too.
  const viaClone = await c.waitJob((await c.backup({ vm: src.name, keepClone: true, cloneHost: 'host-b' })).id);
  assert.equal(viaClone.state, 'completed', viaClone.error);
  assert.deepEqual(idOf((await c.getBackup(viaClone.backup!.backupId)).spec!), idOf(src), 'a clone-mode backup records the source\'s identity');
  const kept = (await c.vms()).find((v) => v.id === viaClone.plan!.targetVm)!;
  assertAllNew(idOf(src), idOf(kept), 'backup clone');
  assert.equal(kept.hostname, kept.name);
  for (const v of [src, restored, kept]) await c.destroyVm(v.id);
});

test('CancelJob is on both APIs: a finished job cannot be cancelled', async () => {
  const c = fleet.client;
  const done = (await c.jobs(1))[0]!;
  assert.equal(await codeOf(c.cancelJob(done.id)), 'FAILED_PRECONDITION');
  const res = await fetch(`http://${fleet.httpAddr}/v1/jobs/${done.id}/cancel`, { method: 'POST' });
  assert.equal(res.status, 412);
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'FAILED_PRECONDITION');
});
