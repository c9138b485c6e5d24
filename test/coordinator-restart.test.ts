/**
 * The coordinator keeps no state a restart would lose: hosts, jobs and events
 * live in NATS JetStream. A clone that runs while the coordinator is down is
 * tracked to completion by the next one (durable consumer on the events stream).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet();
});
after(async () => {
  await fleet.stop();
});

test('hosts and jobs survive a coordinator restart, including a job that ran while it was down', async () => {
  const c0 = fleet.client;
  const vm = await c0.createVm({ name: 'durable', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 2000, pattern: 'hotset', seed: 8 } });
  const done = await c0.waitJob((await c0.clone({ vm: vm.name, targetHost: 'host-b' })).id);
  assert.equal(done.state, 'completed');

  // A slow clone (bandwidth cap), and the coordinator goes away while it runs.
  const running = await c0.clone({ vm: vm.name, targetHost: 'host-b', maxBandwidthMbps: 40, verify: true });
  await fleet.stopCoordinator();
  await sleep(1500);
  await fleet.startCoordinator();
  const c1 = fleet.client;

  // The registry came back from KV: both hosts are known at once, no heartbeat needed.
  const hosts = await c1.hosts();
  assert.deepEqual(hosts.map((h) => h.name).sort(), ['host-a', 'host-b']);
  await fleet.waitHosts(['host-a', 'host-b']);

  const finished = await c1.waitJob(running.id);
  assert.equal(finished.state, 'completed', finished.error);
  assert.equal(finished.stats!.cloneHash, finished.stats!.sourceHash);

  const jobs = await c1.jobs();
  const ids = jobs.map((j) => j.id);
  assert.ok(ids.includes(done.id) && ids.includes(running.id));
  assert.equal(jobs.find((j) => j.id === done.id)!.state, 'completed');
  assert.ok((await c1.vms()).some((v) => v.id === vm.id));
});

test('a backup that runs while the coordinator restarts is completed and catalogued by the next one', async () => {
  const c0 = fleet.client;
  const vm = await c0.createVm({ name: 'kept', host: 'host-a', memoryMib: 32, workload: { dirtyRate: 1000, pattern: 'hotset', seed: 2 }, disks: [{ name: 'disk0', sizeMib: 32, image: 'base' }] });
  // A capped pre-copy: the coordinator (and the repository inside it) is back before the upload starts.
  const running = await c0.backup({ vm: vm.name, cloneHost: 'host-b', maxBandwidthMbps: 20 });
  await fleet.restartCoordinator();
  const c1 = fleet.client;
  const finished = await c1.waitJob(running.id);
  assert.equal(finished.state, 'completed', finished.error);
  const listed = await c1.backups(vm.name);
  assert.deepEqual(listed.map((b) => b.id), [finished.backup!.backupId]);
});

test('a coordinator stops promptly even with a client following events', async () => {
  const ac = new AbortController();
  const following = fleet.client.events({ all: true, follow: true }, () => undefined, ac.signal).catch(() => undefined);
  await sleep(300);
  const t0 = Date.now();
  await fleet.stopCoordinator();
  assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms`);
  ac.abort();
  await following;
  await fleet.startCoordinator();
});
