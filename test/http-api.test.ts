/** The JSON-over-HTTP API: same calls as gRPC, errors as { error } with a matching status. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { LocalFleet } from '../cli/src/fleet/local-fleet.js';
import { startTestFleet } from './helpers/fleet.js';

let fleet: LocalFleet;
before(async () => {
  fleet = await startTestFleet();
});
after(async () => {
  await fleet.stop();
});

async function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`http://${fleet.httpAddr}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('hosts, VM creation, clone and job over HTTP', async () => {
  const hosts = await call('GET', '/v1/hosts');
  assert.equal(hosts.status, 200);
  assert.equal((hosts.json.hosts as unknown[]).length, 2);

  const vm = await call('POST', '/v1/vms', { name: 'web', host: 'host-a', memoryMib: 16, workload: { dirtyRate: 1000, pattern: 'uniform' } });
  assert.equal(vm.status, 201, JSON.stringify(vm.json));
  assert.equal(vm.json.state, 'running');

  const job = await call('POST', '/v1/clone', { vm: 'web', verify: true });
  assert.equal(job.status, 202, JSON.stringify(job.json));
  const id = String(job.json.id);
  let state = '';
  for (let i = 0; i < 200 && state !== 'completed' && state !== 'failed'; i++) {
    state = String((await call('GET', `/v1/jobs/${id}`)).json.state);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(state, 'completed');
  const stats = (await call('GET', `/v1/jobs/${id}`)).json.stats as { sourceHash: string; cloneHash: string };
  assert.equal(stats.cloneHash, stats.sourceHash);
  assert.ok(((await call('GET', '/v1/jobs')).json.jobs as unknown[]).length >= 1);
});

test('errors carry the code and a matching HTTP status', async () => {
  const missing = await call('POST', '/v1/clone', { vm: 'ghost' });
  assert.equal(missing.status, 404);
  assert.deepEqual(missing.json, { error: { name: 'NotFoundError', code: 'NOT_FOUND', message: "vm 'ghost' not found on any registered host" } });
  assert.equal((await call('POST', '/v1/clone', '{not json')).status, 400);
  assert.equal((await call('GET', '/v1/jobs/job-nope')).status, 404);
  assert.equal((await call('GET', '/v1/nothing')).status, 404);
});

test('events replay as NDJSON', async () => {
  const res = await fetch(`http://${fleet.httpAddr}/v1/events`);
  const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  assert.ok(lines.some((e) => e.type === 'clone.completed'));
});

test('backup, catalog, restore and verify over HTTP', async () => {
  const vm = await call('POST', '/v1/vms', { name: 'db', host: 'host-a', memoryMib: 16, disks: [{ name: 'disk0', sizeMib: 8, image: 'base' }] });
  assert.equal(vm.status, 201, JSON.stringify(vm.json));
  const waitJob = async (id: string) => {
    for (let i = 0; i < 400; i++) {
      const j = (await call('GET', `/v1/jobs/${id}`)).json;
      if (j.state === 'completed' || j.state === 'failed') return j;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`job ${id} did not finish`);
  };
  const started = await call('POST', '/v1/backups', { vm: 'db', direct: true });
  assert.equal(started.status, 202, JSON.stringify(started.json));
  const done = await waitJob(String(started.json.id));
  assert.equal(done.state, 'completed', JSON.stringify(done));
  const backupId = String((done.backup as { backupId: string }).backupId);

  const list = await call('GET', '/v1/backups?vm=db');
  assert.deepEqual((list.json.backups as { id: string }[]).map((b) => b.id), [backupId]);
  const one = await call('GET', `/v1/backups/${backupId}`);
  assert.equal(one.json.kind, 'full');

  const restore = await call('POST', `/v1/backups/${backupId}/restore`, { toHost: 'host-b', asName: 'db-copy' });
  assert.equal(restore.status, 202, JSON.stringify(restore.json));
  const restored = await waitJob(String(restore.json.id));
  assert.equal(restored.state, 'completed', JSON.stringify(restored));
  assert.equal((restored.restore as { hashesMatch: boolean }).hashesMatch, true);

  const res = await fetch(`http://${fleet.httpAddr}/v1/backups/${backupId}/verify`, { method: 'POST' });
  const reports = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as { done: boolean; bad: unknown[] });
  assert.equal(reports.at(-1)!.done, true);
  assert.deepEqual(reports.at(-1)!.bad, []);
  assert.equal((await call('GET', '/v1/backups/bk-nope')).status, 404);
  assert.equal((await call('POST', '/v1/backups/bk-nope/verify')).status, 404);
});
