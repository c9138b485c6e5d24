import { test } from 'node:test';
import assert from 'node:assert/strict';
import { predict, thresholdPages, pickHost } from '../coordinator/src/mod.js';
import { stopReason, ResourceExhaustedError, type HostRecord } from '../shared/src/mod.js';

test('threshold: pages that fit in the downtime budget at the measured bandwidth', () => {
  // 400 MB/s, 300 ms: budget 0.6*300-5 = 175 ms -> 70 MB -> 17089 pages
  assert.equal(thresholdPages(400e6, 300), Math.floor(0.175 * (400e6 / 4096)));
  assert.equal(thresholdPages(1e3, 10), 1, 'never below one page');
});

test('prediction converges when the dirty rate is well below bandwidth, and not when above', () => {
  const base = { pageCount: 262_144, bandwidthBytesPerS: 400e6, maxDowntimeMs: 300, maxRounds: 30 };
  const low = predict({ ...base, dirtyPagesPerS: 5_000 });
  assert.equal(low.converges, true);
  assert.ok(low.downtimeMs <= 300, `predicted ${low.downtimeMs} ms`);
  const high = predict({ ...base, dirtyPagesPerS: 200_000 });
  assert.equal(high.converges, false);
  assert.match(high.stopReason, /stalled|max-rounds/);
  const idle = predict({ ...base, dirtyPagesPerS: 0 });
  assert.deepEqual([idle.converges, idle.rounds], [true, 1]);
});

test('stop rule: converged, max rounds, stalled', () => {
  assert.equal(stopReason([1000], 10, 100, 30), 'converged');
  assert.equal(stopReason([1000, 900], 800, 100, 2), 'max-rounds');
  assert.equal(stopReason([1000, 500, 490, 485], 480, 100, 30), 'stalled');
  assert.equal(stopReason([1000, 500, 250, 125], 200, 100, 30), '');
});

function host(name: string, free: number, state: 'up' | 'down' = 'up'): HostRecord {
  return {
    name, state, status: 'up', dataAddr: '', driver: 'sim', capacity: { memoryMib: 1000, cpus: 2, maxVms: 10 },
    usedMemoryMib: 1000 - free, vms: [], rssBytes: 0, peakRssBytes: 0, startedAt: '', datastore: '', sentAt: '', intervalMs: 1000,
    cluster: 'default', datastorePath: '', datastoreUsedMib: 0, datastoreFreeMib: 0, array: false,
  };
}

test('target choice: the up host with most free memory, never the source; a clear error when none fits', () => {
  assert.equal(pickHost([host('a', 900), host('b', 300), host('c', 600)], 200, 'a').name, 'c');
  assert.throws(() => pickHost([host('a', 900), host('b', 100), host('c', 900, 'down')], 200, 'a'), (e: unknown) =>
    e instanceof ResourceExhaustedError && /host 'b' lacks room/.test(e.message) && /host 'c' is down/.test(e.message));
});
