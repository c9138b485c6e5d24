/** `doppel demo` / `npm run demo`: a private local fleet, one scenario, a summary, teardown. */
import { InvalidArgumentError, toDoppelError } from '../../../shared/src/mod.js';
import { LocalFleet } from '../fleet/local-fleet.js';
import { flag, int, parse, str } from '../args.js';
import { cloneScenario, type DemoArgs } from './clone-scenario.js';
import { backupScenario } from './backup-scenario.js';
import { snapshotScenario } from './snapshot-scenario.js';
import { hotScenario } from './hot-scenario.js';
import { bypassScenario } from './bypass-scenario.js';
import { CLUSTER_FLEET, clusterScenario } from './cluster-scenario.js';
import { qemuFleetOptions, qemuScenario } from './qemu-scenario.js';

/** Scenarios; the last is the default (the live clone-backup, the product's main job). */
const SCENARIOS: Record<string, (fleet: LocalFleet, a: DemoArgs) => Promise<Record<string, unknown>>> = {
  clone: cloneScenario,
  'snapshot-pair': snapshotScenario,
  'hot-clone': hotScenario,
  'bypass-backup': bypassScenario,
  'cross-cluster-restore': clusterScenario,
  'qemu-clone-backup': qemuScenario,
  'clone-backup': backupScenario,
};
const DEFAULT_SCENARIO = Object.keys(SCENARIOS).at(-1)!;

export const DEMO_HELP = `npm run demo -- [options]   (or: doppel demo [options])

Starts a private local fleet (its own nats-server on a free port, a coordinator,
agents host-a and host-b with the sim driver, each in its own process), runs one
scenario end to end, prints a summary, tears everything down, and exits 0 only
on success.

  --scenario NAME          ${Object.keys(SCENARIOS).join(' | ')} (default ${DEFAULT_SCENARIO})
  --vm-memory-mib N        guest memory (default 256)
  --disk-mib N             guest disk size (default 256)
  --dirty-rate N           pages per second the guest writes (default 20000)
  --disk-write-rate N      4 KiB disk writes per second the guest makes (default 100)
  --pattern P              uniform | hotset | sequential (default hotset)
  --seed N                 content and workload seed (default 1)
  --max-downtime-ms N      allowed switchover time (default 300)
  --json                   end with one line of JSON with every figure
  --keep-logs              keep the fleet's log directory

Scenario 'clone-backup' (the default): a VM with memory and disk under load on
host-a is backed up through a live clone on host-b (the clone gets the disk as
it was at the switchover, runs network-isolated, its disk is snapshotted and
backed up, then it is removed), then backed up again incrementally; the first
backup is restored to host-b and verified. Fields: backup.sourcePausedMs,
backup.bytesRead, backup.bytesStored, backup.chunksNew, backup.chunksReused,
backup.diskHash (content hash of the backed-up snapshot), incremental.* (the same
for the incremental), restore.diskHash (read back from the restored disk),
verify.badChunks.

Scenario 'snapshot-pair' (seed 002): the VM gets a snapshot pair (a storage snapshot of its disk
on host-a, a metadata snapshot of its configuration, execution state and resource usage in NATS
KV, same timestamp), then a storage-only snapshot after more writes, then reverts to the pair.
Fields: pair.storageId, pair.metadataId, pair.storageTimestamp, pair.metadataTimestamp (equal),
pair.metadataStore, update.storageId, update.linkedMetadataId, update.metadataRevisionUnchanged,
revert.diskHash (the VM's disk after the revert), revert.expectedDiskHash (the snapshot's).

Scenario 'hot-clone' (seed 004): host-a and host-b share a datastore. The VM is cloned to
host-b without ever being suspended: its disks, RAM and vCPU freeze (slowest first), the
frozen image is copied while the guest's writes go to a buffer, the buffer is merged back,
and the clone overlays the frozen disk with a new UUID, MAC, hostname and machine-id; then
it runs. Fields: hot.frozenHash, hot.cloneHash (equal), hot.levels, hot.bufferedWrites,
hot.mergedWrites (equal), hot.sourceStallMs (time the source guest could not write),
hot.sourceSuspended (false), hot.sharedBaseBytes (the frozen base both read),
hot.cloneOverlayBytes (what the clone holds of its own after 1 s of running),
hot.sourceMac, hot.cloneMac (and uuid, hostname, machine-id of both).

Scenario 'bypass-backup' (seed 001): the fleet gets a simulated storage array. The VM writes
its disk through the hypervisor and a bypass volume straight to the array, with a consistency
token on both in one step. It is backed up time-consistently (snapshot t1 of both, the bypass
volume backed up from t1, snapshot t2 of the disk, the disk backed up from t2 and reverted to
t1), incrementally, and once with the revert off (a test flag); each is restored to host-b.
Fields: bypass.t1, bypass.t2, bypass.blocksReverted, bypass.fenceMs, restore.imageToken and
restore.bypassToken (equal), incremental.* (kind, bytesRead, tokens), noRevert.imageToken and
noRevert.bypassToken (they differ: the revert is what makes the backup time-consistent).

Scenario 'cross-cluster-restore' (seed 003): two clusters, site-a (host-a and host-a2 on
datastore a-ssd, network prod on VLAN 20, Cascadelake-Server) and site-b (host-b1 on b-bulk,
host-b2 on b-fast, network production on VLAN 20, Broadwell and Haswell). The VM on site-a is
backed up through a live clone; its save set holds its configuration and site-a's. The
restore to site-b is planned (a dry run), then made with the plan's changes and the VM
started; a restore to site-c, which cannot hold the VM, is refused before any data moves.
Fields: plan.changes (kind, item, from, to, rule), restore.cluster, restore.network,
restore.datastorePath, restore.cpuModel, restore.diskHash and backup.diskHash (equal),
impossible.error (every problem).

Scenario 'qemu-clone-backup' (seed 000 on real QEMU): the agents run the qemu driver (KVM
when it works, else TCG) and the VM is the real test guest, built from Debian packages at
the first run (kernel, busybox, a memory checker; cached in ~/.cache/doppel). The guest
fills a quarter of its memory with a verifiable pattern and dirties --dirty-rate pages/s.
It is backed up through a live clone on host-b: QEMU's own migration stream goes between
the agents over the gRPC data plane in LZ4 frames, the qcow2 disk becomes point-in-time in
the paused switchover window, and the backup is read from the clone's disk snapshot over
NBD. The clone's guest checks its memory and disk, the source runs on, an incremental
follows the guest's disk writes, and the backup is restored, booted and verified. Fields:
the clone.*, backup.*, incremental.* and restore.* of the other scenarios (no memory
hashes: clone.hashesEqual is null), qemu.accel (kvm or tcg), qemu.guestMemoryCheck ("ok"),
qemu.sourceRunning (true). Try: --vm-memory-mib 256 --disk-mib 64 --dirty-rate 5000.

Scenario 'clone' fields: clone.rounds, clone.pagesPerRound, clone.bytesRaw,
clone.bytesWire, clone.downtimeMs (source suspended to resumed, without
verification), clone.totalMs, clone.verifyMs, clone.sourceHash (the source's
memory at suspension), clone.cloneHash, clone.hashesEqual.`;

export async function demoCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    scenario: { type: 'string' },
    'vm-memory-mib': { type: 'string' },
    'disk-mib': { type: 'string' },
    'dirty-rate': { type: 'string' },
    'disk-write-rate': { type: 'string' },
    pattern: { type: 'string' },
    seed: { type: 'string' },
    'max-downtime-ms': { type: 'string' },
    json: { type: 'boolean' },
    'keep-logs': { type: 'boolean' },
  });
  if (flag(p, 'help')) return void console.log(DEMO_HELP), 0;
  const scenario = str(p, 'scenario', DEFAULT_SCENARIO);
  const run = SCENARIOS[scenario];
  if (!run) throw new InvalidArgumentError(`unknown scenario '${scenario}' (have: ${Object.keys(SCENARIOS).join(', ')})`);
  const args: DemoArgs = {
    vmMemoryMib: int(p, 'vm-memory-mib', 256),
    diskMib: int(p, 'disk-mib', 256),
    dirtyRate: int(p, 'dirty-rate', 20000),
    diskWriteRate: int(p, 'disk-write-rate', 100),
    pattern: str(p, 'pattern', 'hotset'),
    seed: int(p, 'seed', 1),
    maxDowntimeMs: int(p, 'max-downtime-ms', 300),
    quiet: false,
  };
  const json = flag(p, 'json');
  const t0 = performance.now();
  const hostNames = scenario === 'cross-cluster-restore' ? (CLUSTER_FLEET.agents ?? []).join(', ') : 'host-a, host-b';
  console.log(`doppel demo: scenario '${scenario}' — starting a private fleet (nats-server, coordinator, ${hostNames})…`);
  // A hot clone overlays the source's frozen disk: its scenario's hosts share a datastore.
  // A bypass backup needs a storage array (and its test-only no-revert run needs the agents to allow it).
  const bypass = scenario === 'bypass-backup';
  const qemu = scenario === 'qemu-clone-backup' ? await qemuFleetOptions(args, (s) => console.log(s)) : {};
  const fleet = await LocalFleet.start({
    ...qemu,
    mode: 'process',
    agentMemoryMib: Math.max(1024, args.vmMemoryMib * 2),
    sharedDatastore: scenario === 'hot-clone',
    ...(bypass ? { array: true, allowFaultInjection: true } : {}),
    // Two clusters: site-a (host-a, host-a2 on one datastore) and site-b (host-b1, host-b2 on two).
    ...(scenario === 'cross-cluster-restore' ? CLUSTER_FLEET : {}),
  });
  let result: Record<string, unknown>;
  let ok = false;
  try {
    console.log(`fleet up: NATS ${fleet.nats.url}, coordinator ${fleet.grpcAddr}`);
    result = await run(fleet, args);
    ok = result.ok === true;
  } catch (err) {
    const e = toDoppelError(err);
    result = { ok: false, error: { name: e.name, code: e.code, message: e.message } };
    console.error(`demo failed: ${e.name}: ${e.message}`);
  } finally {
    const logs = fleet.logDir;
    await fleet.stop({ keepLogs: !ok || flag(p, 'keep-logs') });
    if (!ok || flag(p, 'keep-logs')) console.error(`fleet logs kept in ${logs}`);
  }
  const summary = { scenario, ...result, demoMs: Math.round(performance.now() - t0) };
  console.log(ok ? `demo '${scenario}' succeeded in ${(summary.demoMs / 1000).toFixed(1)} s` : `demo '${scenario}' FAILED`);
  if (json) console.log(JSON.stringify(summary));
  return ok ? 0 : 1;
}
