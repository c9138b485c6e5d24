/**
 * Scenario `snapshot-pair` (seed 002): a VM writing its disk on host-a gets a
 * snapshot pair (storage on the host, metadata in NATS KV, same timestamp);
 * after more writes a storage-only snapshot links to the same metadata, whose
 * KV revision does not move; then the VM reverts to the pair and its disk is
 * compared by hash with the snapshot's frozen layers.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { LocalFleet } from '../fleet/local-fleet.js';
import { snapshotTree } from '../commands/snapshot.js';
import { createDemoVm, type DemoArgs } from './clone-scenario.js';

export async function snapshotScenario(fleet: LocalFleet, a: DemoArgs): Promise<Record<string, unknown>> {
  const c = fleet.client;
  const { vm, say } = await createDemoVm(fleet, a);
  say(`vm ${vm.name} (${vm.id}) on host-a: ${a.vmMemoryMib} MiB, disk ${a.diskMib} MiB writing ${a.diskWriteRate} blocks/s`);
  await sleep(500);

  const pair = await c.createSnapshot(vm.name);
  const s = pair.storage!;
  const m = pair.metadata!;
  say(`pair: storage ${s.id} on ${s.host} (frozen in ${s.createMs.toFixed(1)} ms), metadata ${m.id} in ${m.store} (rev ${m.revision})`);

  await sleep(1000);
  const update = await c.createSnapshot(vm.name, true);
  const u = update.storage!;
  const after = (await c.snapshot(m.id)).metadata[0];
  say(`storage-only update: ${u.id} linked to ${u.metadataId}; metadata revision ${after?.revision} (was ${m.revision})`);

  await sleep(1000);
  const revert = await c.revertSnapshot(s.id);
  say(`reverted to ${s.id}: disk ${revert.diskHashes[0]?.slice(0, 16)}… vs snapshot ${revert.snapshotHashes[0]?.slice(0, 16)}… (${revert.hashesMatch ? 'equal' : 'DIFFERENT'}), ${revert.runState}`);

  const tree = await c.snapshots(vm.name);
  say(snapshotTree(tree));
  const check = await c.checkSnapshots();
  const orphans = check.storageWithoutMetadata.length + check.metadataWithoutStorage.length;
  say(`check: ${orphans} orphans on ${check.hostsChecked.join(', ')}`);

  const result = {
    pair: {
      storageId: s.id,
      metadataId: m.id,
      storageTimestamp: s.timestamp,
      metadataTimestamp: m.timestamp,
      metadataStore: m.store,
      storageHost: s.host,
      metadataRevision: m.revision,
      createMs: s.createMs,
      pauseMs: pair.pauseMs,
      runState: m.runState,
      resources: m.resources,
    },
    update: {
      storageId: u.id,
      linkedMetadataId: u.metadataId,
      metadataRevision: after?.revision ?? 0,
      metadataRevisionUnchanged: after?.revision === m.revision,
      createMs: u.createMs,
    },
    revert: {
      storageId: s.id,
      diskHash: revert.diskHashes[0] ?? '',
      expectedDiskHash: revert.snapshotHashes[0] ?? '',
      hashesMatch: revert.hashesMatch,
      runState: revert.runState,
      ms: revert.ms,
    },
    check: { storageWithoutMetadata: check.storageWithoutMetadata, metadataWithoutStorage: check.metadataWithoutStorage },
  };
  const ok =
    s.timestamp === m.timestamp &&
    u.metadataId === m.id &&
    result.update.metadataRevisionUnchanged &&
    revert.hashesMatch &&
    result.revert.diskHash !== '' &&
    orphans === 0;
  return { ok, ...result };
}
