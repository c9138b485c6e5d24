/**
 * Seed 003's pure logic: CPU model compatibility, cluster configuration checks, `--map` parsing, sealing and
 * opening save sets, and the restore plan (what changes to fit a differently configured cluster, or why not).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DataCorruptionError,
  FailedPreconditionError,
  InvalidArgumentError,
  SAVE_SET_FORMAT,
  applyPlan,
  canonicalJson,
  compatibleCpuModel,
  cpuModelInfo,
  deriveClusterConfig,
  emptyMaps,
  mapsToStrings,
  openSaveSet,
  parseDatastoreArg,
  parseMaps,
  parseNetworkArg,
  planRestore,
  sealSaveSet,
  validateClusterConfig,
  type ClusterConfig,
  type ClusterHostState,
  type ClusterView,
  type DatastoreState,
  type RestoreMaps,
  type SaveSet,
  type VmExportConfig,
} from '../shared/src/mod.js';

// ---- fixtures ----

const IDENTITY = { uuid: '0f8fad5b-d9cb-469f-a165-70867728950e', mac: '52:54:00:12:34:56', hostname: 'web', machineId: 'a'.repeat(32) };

const SITE_A: ClusterConfig = {
  name: 'site-a',
  hosts: ['a1', 'a2'],
  networks: [
    { name: 'prod', bridge: 'br0', vlan: 10 },
    { name: 'mgmt', bridge: 'br1', vlan: 0 },
  ],
  datastores: [{ name: 'fast', path: '/srv/ds-fast', capacityMib: 0 }],
  cpuModels: ['Icelake-Server'],
  maxVmMemoryMib: 0,
  registeredAt: '2024-01-01T00:00:00.000Z',
};

function vmConfig(): VmExportConfig {
  const workload = { dirtyRate: 0, pattern: 'uniform' as const, seed: 1, diskWriteRate: 0 };
  return {
    id: 'vm-1',
    name: 'web',
    memoryMib: 1024,
    vcpus: 2,
    cpuModel: 'Icelake-Server',
    nics: [
      { name: 'nic0', network: 'prod', bridge: 'br0', vlan: 10, mac: IDENTITY.mac },
      { name: 'nic1', network: 'mgmt', bridge: 'br1', vlan: 0, mac: '' },
    ],
    datastore: { name: 'fast', path: '/srv/ds-fast' },
    disks: [
      { name: 'disk0', sizeMib: 64, image: 'base', format: 'sim-layers', path: '/srv/ds-fast/vms/web/disk0' },
      { name: 'disk1', sizeMib: 128, image: '', format: 'sim-layers', path: '/srv/ds-fast/vms/web/disk1' },
    ],
    bypass: [],
    workload,
    identity: IDENTITY,
    spec: {
      name: 'web',
      memoryMib: 1024,
      vcpus: 2,
      cpuModel: 'Icelake-Server',
      nics: [{ network: 'prod' }, { network: 'mgmt' }],
      workload,
      disks: [
        { name: 'disk0', sizeMib: 64, image: 'base' },
        { name: 'disk1', sizeMib: 128, image: '' },
      ],
      identity: IDENTITY,
    },
  };
}

const DISKS = [
  { name: 'disk0', contentHash: 'c0'.repeat(32) },
  { name: 'disk1', contentHash: 'c1'.repeat(32) },
];

function saveSet(config: VmExportConfig = vmConfig()): SaveSet {
  return sealSaveSet({
    backupId: 'bk-1',
    vm: 'vm-1',
    exportedAt: '2024-02-01T00:00:00.000Z',
    exportedBy: { host: 'a1', driver: 'sim' },
    config,
    cluster: SITE_A,
    datastores: [{ ...SITE_A.datastores[0]!, mountedBy: ['a1', 'a2'], freeMib: 5000, usedMib: 192 }],
    disks: DISKS,
  });
}

function store(name: string, path: string, freeMib: number, mountedBy: string[] = ['h1']): DatastoreState {
  return { name, path, capacityMib: 0, mountedBy, freeMib: mountedBy.length === 0 ? 0 : freeMib, usedMib: 0 };
}

function host(name: string, datastore: string, memoryMib = 8192, freeMemoryMib = memoryMib, state: 'up' | 'down' = 'up'): ClusterHostState {
  return { name, state, memoryMib, freeMemoryMib, datastorePath: `/x/${datastore}`, datastore };
}

function view(config: ClusterConfig, datastores: DatastoreState[], hosts: ClusterHostState[]): ClusterView {
  return { config, registered: true, hosts, datastores };
}

/** site-a as it is: the VM's own networks, datastore and CPU model. */
function identicalView(): ClusterView {
  return view({ ...SITE_A, name: 'site-a2' }, [store('fast', '/srv/ds-fast', 10_000, ['h1', 'h2'])], [
    host('h1', 'fast', 8192, 6000),
    host('h2', 'fast', 8192, 7000),
    host('h3', 'fast', 8192, 8000, 'down'),
  ]);
}

/** site-b: other network names on the same VLANs, other datastores, an older CPU generation. */
const SITE_B: ClusterConfig = {
  name: 'site-b',
  hosts: [],
  networks: [
    { name: 'zeta', bridge: 'br7', vlan: 10 },
    { name: 'alpha', bridge: 'br8', vlan: 10 },
    { name: 'lab30', bridge: 'br3', vlan: 30 },
    { name: 'admin', bridge: 'br9', vlan: 0 },
    { name: 'netz', bridge: 'br1', vlan: 0 },
  ],
  datastores: [],
  cpuModels: ['Haswell', 'Skylake-Server'],
  maxVmMemoryMib: 0,
  registeredAt: '',
};

function siteB(): ClusterView {
  return view(
    SITE_B,
    [
      store('fast', '/srv/ds-fast', 100),
      store('slow', '/data/slow', 5000, ['b3']),
      store('bulk', '/data/bulk', 9000, ['b1', 'b2']),
      store('huge', '/data/huge', 0, []),
    ],
    [host('b1', 'bulk', 4096, 2000), host('b2', 'bulk', 16384, 3000), host('b3', 'slow', 8192, 8000), host('b4', 'bulk', 512, 512)],
  );
}

function maps(...args: string[]): RestoreMaps {
  return parseMaps(args);
}

function isError(cls: new (...a: never[]) => Error, re: RegExp): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
    assert.match(e.message, re);
    return true;
  };
}

// ---- CPU models ----

test('cpu models: catalog order and vendors', () => {
  assert.equal(cpuModelInfo('qemu64')?.vendor, 'generic');
  assert.equal(cpuModelInfo('EPYC-Rome')?.vendor, 'amd');
  const nehalem = cpuModelInfo('Nehalem')?.generation ?? -1;
  const granite = cpuModelInfo('GraniteRapids')?.generation ?? -1;
  assert.ok(nehalem >= 0 && granite > nehalem);
  assert.ok((cpuModelInfo('Haswell-noTSX')?.generation ?? 99) < (cpuModelInfo('Haswell')?.generation ?? -1));
  assert.equal(cpuModelInfo('haswell'), undefined, 'names are case-sensitive');
  assert.equal(cpuModelInfo('Foo'), undefined);
});

test('cpu models: exact, newer preferred over older, other vendor and unknown give null, generic', () => {
  assert.deepEqual(compatibleCpuModel('Haswell', ['Skylake-Server', 'Haswell']), { model: 'Haswell', rule: 'same CPU model' });
  assert.deepEqual(compatibleCpuModel('Haswell', ['IvyBridge', 'Skylake-Server', 'Broadwell', 'SandyBridge']), {
    model: 'Broadwell',
    rule: 'compatible CPU model (newer: a superset of its features)',
  });
  assert.deepEqual(compatibleCpuModel('Haswell', ['SandyBridge', 'IvyBridge', 'EPYC-Genoa']), {
    model: 'IvyBridge',
    rule: 'compatible CPU model (older: the guest boots with fewer CPU features)',
  });
  assert.deepEqual(compatibleCpuModel('EPYC-Rome', ['EPYC-Genoa', 'EPYC-Milan', 'Icelake-Server']), {
    model: 'EPYC-Milan',
    rule: 'compatible CPU model (newer: a superset of its features)',
  });
  assert.equal(compatibleCpuModel('Icelake-Server', ['EPYC', 'EPYC-Genoa']), null, 'another vendor only');
  assert.equal(compatibleCpuModel('Icelake-Server', ['qemu64']), null, 'a generic model is not offered to a non-generic guest');
  assert.equal(compatibleCpuModel('Foo', ['Haswell', 'qemu64']), null, 'unknown source');
  assert.equal(compatibleCpuModel('haswell', ['Haswell']), null, 'case-sensitive');
  assert.deepEqual(compatibleCpuModel('qemu64', ['Haswell', 'qemu64']), { model: 'qemu64', rule: 'same CPU model' });
  assert.deepEqual(compatibleCpuModel('kvm64', ['Haswell', 'qemu64']), { model: 'qemu64', rule: 'compatible CPU model (generic guest)' });
  assert.deepEqual(compatibleCpuModel('qemu64', ['Skylake-Server', 'Haswell', 'Foo']), { model: 'Haswell', rule: 'compatible CPU model (generic guest)' });
  assert.equal(compatibleCpuModel('qemu64', ['Foo']), null);
});

// ---- cluster configuration ----

test('cluster config: a valid one is normalized and stamped', () => {
  const now = new Date('2024-03-01T12:00:00Z');
  const c = validateClusterConfig(
    {
      name: 'site-b',
      hosts: ['h1', 'h2'],
      networks: [parseNetworkArg('prod=br0:10'), parseNetworkArg('mgmt=br1')],
      datastores: [parseDatastoreArg('fast=/srv/ds-fast:4096'), parseDatastoreArg('slow=/srv/ds-slow')],
      cpuModels: ['Icelake-Server', 'qemu64'],
    },
    now,
  );
  assert.deepEqual(c, {
    name: 'site-b',
    hosts: ['h1', 'h2'],
    networks: [
      { name: 'prod', bridge: 'br0', vlan: 10 },
      { name: 'mgmt', bridge: 'br1', vlan: 0 },
    ],
    datastores: [
      { name: 'fast', path: '/srv/ds-fast', capacityMib: 4096 },
      { name: 'slow', path: '/srv/ds-slow', capacityMib: 0 },
    ],
    cpuModels: ['Icelake-Server', 'qemu64'],
    maxVmMemoryMib: 0,
    registeredAt: '2024-03-01T12:00:00.000Z',
  });
});

test('cluster config: each bad field is refused, naming the cluster and the field', () => {
  const base = { name: 'site-b', cpuModels: ['qemu64'] };
  const bad = (over: Record<string, unknown>, re: RegExp): void => {
    assert.throws(() => validateClusterConfig({ ...base, ...over }), isError(InvalidArgumentError, re));
  };
  const net = (vlan: unknown, bridge: unknown = 'br0'): unknown[] => [
    { name: 'a', bridge: 'br0', vlan: 0 },
    { name: 'b', bridge, vlan },
  ];
  assert.throws(() => validateClusterConfig({ ...base, networks: net(5000) }), (e: unknown) => {
    assert.ok(e instanceof InvalidArgumentError);
    assert.equal(e.message, "cluster 'site-b' network 1 VLAN must be an integer from 0 to 4094 (got 5000)");
    return true;
  });
  bad({ networks: net(1.5) }, /network 1 VLAN must be an integer/);
  bad({ networks: net(10, 'bridge-name-too-long') }, /network 1 bridge must be a Linux interface name: 1-15/);
  bad({ networks: net(10, 'br 0') }, /network 1 bridge/);
  bad({ networks: [{ name: 'a', bridge: 'br0', vlan: 0 }, { name: 'a', bridge: 'br1', vlan: 1 }] }, /network 'a' is listed twice/);
  bad({ networks: [{ name: 'bad name', bridge: 'br0', vlan: 0 }] }, /cluster 'site-b' network 0 name must be 1-63/);
  bad({ datastores: [{ name: 'd', path: 'srv/ds' }] }, /datastore 'd' path must be an absolute, normalized/);
  bad({ datastores: [{ name: 'd', path: '/srv/../etc' }] }, /datastore 'd' path/);
  bad({ datastores: [{ name: 'd', path: '/srv/ds/' }] }, /datastore 'd' path/);
  bad({ datastores: [{ name: 'd', path: '/' }] }, /datastore 'd' path/);
  bad(
    { datastores: [{ name: 'd', path: '/srv/ds' }, { name: 'e', path: '/srv/ds' }] },
    /datastores 'd' and 'e' have the same path \/srv\/ds/,
  );
  bad({ datastores: [{ name: 'd', path: '/a' }, { name: 'd', path: '/b' }] }, /datastore 'd' is listed twice/);
  bad({ datastores: [{ name: 'd', path: '/a', capacityMib: -1 }] }, /datastore 'd' capacity \(MiB\) must be an integer from 0/);
  bad({ cpuModels: [] }, /cluster 'site-b' must offer at least one CPU model/);
  bad({ cpuModels: ['qemu64', 'qemu64'] }, /CPU model 'qemu64' is listed twice/);
  bad({ cpuModels: ['bad model'] }, /CPU model 0 must be 1-63/);
  bad({ hosts: ['h1', 'h1'] }, /host 'h1' is listed twice/);
  bad({ hosts: 'h1' }, /hosts must be a list/);
  bad({ maxVmMemoryMib: -5 }, /max VM memory \(MiB\) must be an integer from 0/);
  bad({ name: 'no good' }, /^cluster name must be 1-63/);
  assert.throws(() => validateClusterConfig(null), isError(InvalidArgumentError, /cluster must be an object/));
});

test('cluster config: --network and --datastore syntax', () => {
  assert.deepEqual(parseNetworkArg('prod=br0:10'), { name: 'prod', bridge: 'br0', vlan: 10 });
  assert.deepEqual(parseNetworkArg('prod=br0'), { name: 'prod', bridge: 'br0', vlan: 0 });
  for (const bad of ['prod', 'prod=', '=br0', 'prod=br0:', 'prod=br0:x', 'prod=br0:10:2']) {
    assert.throws(() => parseNetworkArg(bad), isError(InvalidArgumentError, /--network must be NAME=BRIDGE or NAME=BRIDGE:VLAN/), bad);
  }
  assert.deepEqual(parseDatastoreArg('fast=/srv/ds-fast:4096'), { name: 'fast', path: '/srv/ds-fast', capacityMib: 4096 });
  assert.deepEqual(parseDatastoreArg('fast=/srv/ds-fast'), { name: 'fast', path: '/srv/ds-fast', capacityMib: 0 });
  assert.deepEqual(parseDatastoreArg('odd=/srv/a:b'), { name: 'odd', path: '/srv/a:b', capacityMib: 0 });
  for (const bad of ['fast', '=/srv', 'fast=', 'fast=:10']) {
    assert.throws(() => parseDatastoreArg(bad), isError(InvalidArgumentError, /--datastore must be NAME=PATH or NAME=PATH:CAPACITY_MIB/), bad);
  }
});

test('cluster config: derived from its agents when no one registered it', () => {
  const c = deriveClusterConfig('edge', [
    { name: 'e1', datastorePath: '/var/lib/doppel/ds', datastoreId: 'ds-1' },
    { name: 'e2', datastorePath: '/var/lib/doppel/ds', datastoreId: 'ds-1' },
    { name: 'e3', datastorePath: '/other', datastoreId: 'ds-2' },
  ]);
  assert.deepEqual(c, {
    name: 'edge',
    hosts: ['e1', 'e2', 'e3'],
    networks: [{ name: 'default', bridge: 'virbr0', vlan: 0 }],
    datastores: [
      { name: 'ds-1', path: '/var/lib/doppel/ds', capacityMib: 0 },
      { name: 'ds-2', path: '/other', capacityMib: 0 },
    ],
    cpuModels: ['qemu64'],
    maxVmMemoryMib: 0,
    registeredAt: '',
  });
});

// ---- maps ----

test('maps: parse, print, and refuse bad ones', () => {
  const m = parseMaps(['net:prod=lab', 'store:fast=slow', 'cpu:Icelake-Server=Skylake-Server', 'net:mgmt=admin']);
  assert.deepEqual(m, { net: { prod: 'lab', mgmt: 'admin' }, store: { fast: 'slow' }, cpu: { 'Icelake-Server': 'Skylake-Server' } });
  assert.deepEqual(mapsToStrings(m), ['net:prod=lab', 'net:mgmt=admin', 'store:fast=slow', 'cpu:Icelake-Server=Skylake-Server']);
  assert.deepEqual(parseMaps(mapsToStrings(m)), m);
  assert.deepEqual(parseMaps([]), emptyMaps());
  for (const bad of ['disk:a=b', 'NET:a=b', 'net:a', 'prod=lab', 'net=a=b']) {
    assert.throws(() => parseMaps([bad]), isError(InvalidArgumentError, /--map must be KIND:SOURCE=DEST/), bad);
  }
  assert.throws(() => parseMaps(['net:=lab']), isError(InvalidArgumentError, /the source network must be 1-63/));
  assert.throws(() => parseMaps(['store:fast=bad name']), isError(InvalidArgumentError, /the destination datastore must be 1-63/));
  assert.throws(() => parseMaps(['cpu:Haswell=bad model']), isError(InvalidArgumentError, /the destination CPU model must be/));
  assert.throws(() => parseMaps(['net:prod=a', 'net:prod=b']), isError(InvalidArgumentError, /--map net:prod is given twice \(to 'a' and to 'b'\)/));
  // The same name under two kinds is two maps.
  assert.deepEqual(parseMaps(['net:x=y', 'store:x=y']).store, { x: 'y' });
  // A name that is also an Object.prototype key is an ordinary name.
  assert.deepEqual(parseMaps(['net:constructor=a']).net, { constructor: 'a' });
});

// ---- save sets ----

function metadata(s: unknown, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ backupId: 'bk-1', vm: 'vm-1', vmName: 'web', host: 'a1', mode: 'clone', spec: vmConfig().spec, ...extra, saveSet: s });
}

const EXPECT = { backupId: 'bk-1', disks: DISKS };

test('canonical JSON: sorted keys, no whitespace, undefined dropped', () => {
  assert.equal(canonicalJson({ b: 1, a: [3, { d: undefined, c: 'x' }], e: null }), '{"a":[3,{"c":"x"}],"b":1,"e":null}');
  assert.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
  assert.equal(canonicalJson([undefined, 1]), '[null,1]');
});

test('save set: sealed, stored in metadata, and opened again', () => {
  const s = saveSet();
  assert.equal(s.format, SAVE_SET_FORMAT);
  assert.match(s.digest, /^[0-9a-f]{64}$/);
  assert.deepEqual(openSaveSet(metadata(s), EXPECT), s);
  assert.equal(sealSaveSet(s).digest, s.digest, 'sealing an opened save set again gives the same digest');
});

test('save set: tampered, foreign, for another backup, missing, disks that differ, not JSON', () => {
  const s = saveSet();
  const tamper = (f: (x: Record<string, unknown>) => void): string => {
    const copy = JSON.parse(JSON.stringify(s)) as Record<string, unknown>;
    f(copy);
    return metadata(copy);
  };
  assert.throws(
    () => openSaveSet(tamper((x) => ((x.config as Record<string, unknown>).memoryMib = 99_999)), EXPECT),
    isError(DataCorruptionError, /save set of backup bk-1 is corrupt: its digest says [0-9a-f]{12}…, its content hashes to [0-9a-f]{12}…/),
  );
  assert.throws(() => openSaveSet(tamper((x) => (x.backupId = 'bk-2')), EXPECT), isError(DataCorruptionError, /digest says/), 'digest first');
  assert.throws(() => openSaveSet(tamper((x) => delete x.digest), EXPECT), isError(DataCorruptionError, /it has no digest/));
  assert.throws(
    () => openSaveSet(tamper((x) => (x.format = 'other.tool/v2')), EXPECT),
    isError(FailedPreconditionError, /is not a doppel save set \(format 'other.tool\/v2', expected 'doppel.saveset\/v1'\)/),
  );
  assert.throws(
    () => openSaveSet(metadata(s), { ...EXPECT, backupId: 'bk-9' }),
    isError(FailedPreconditionError, /save set in backup bk-9 belongs to backup bk-1, not bk-9/),
  );
  assert.throws(
    () => openSaveSet(JSON.stringify({ backupId: 'bk-1', vm: 'vm-1' }), EXPECT),
    isError(FailedPreconditionError, /^backup bk-1 has no save set \(it was made before save sets or by another tool\): restore it to a host with --to HOST$/),
  );
  assert.throws(() => openSaveSet(metadata(s), { ...EXPECT, disks: [DISKS[0]!] }), isError(DataCorruptionError, /lists 2 disks, the backup has 1/));
  assert.throws(
    () => openSaveSet(metadata(s), { ...EXPECT, disks: [DISKS[0]!, { name: 'disk1', contentHash: 'ff'.repeat(32) }] }),
    isError(DataCorruptionError, /disk 'disk1' has content hash c1c1c1c1c1c1…, the backup's has ffffffffffff…/),
  );
  assert.throws(
    () => openSaveSet(metadata(s), { ...EXPECT, disks: [DISKS[1]!, DISKS[0]!] }),
    isError(DataCorruptionError, /its disk 0 is 'disk0', the backup's disk 0 is 'disk1'/),
  );
  assert.throws(() => openSaveSet('{not json', EXPECT), isError(DataCorruptionError, /^backup bk-1: its manifest's metadata is not valid JSON/));
  assert.throws(() => openSaveSet('[1,2]', EXPECT), isError(DataCorruptionError, /metadata is not valid JSON/));
  assert.throws(() => openSaveSet(metadata('a string'), EXPECT), isError(DataCorruptionError, /is corrupt: it is not a JSON object/));
});

test('save set: a sealed one whose content is malformed is refused as corrupt, with the reason', () => {
  const badSpec = vmConfig();
  badSpec.spec = { ...badSpec.spec, memoryMib: 0 };
  assert.throws(() => openSaveSet(metadata(saveSet(badSpec)), EXPECT), isError(DataCorruptionError, /config.spec .* is invalid: memory \(MiB\) must be/));
  const badNics = vmConfig();
  badNics.nics = [badNics.nics[0]!];
  assert.throws(() => openSaveSet(metadata(saveSet(badNics)), EXPECT), isError(DataCorruptionError, /config.nics are on networks \[prod\], its spec's NICs on \[prod, mgmt\]/));
  const badMem = vmConfig();
  (badMem as unknown as Record<string, unknown>).memoryMib = 'lots';
  assert.throws(() => openSaveSet(metadata(saveSet(badMem)), EXPECT), isError(DataCorruptionError, /config.memoryMib must be an integer/));
  const badCluster = sealSaveSet({ ...saveSet(), cluster: { ...SITE_A, networks: [{ name: 'x', bridge: 'br0', vlan: 9999 }] } });
  assert.throws(() => openSaveSet(metadata(badCluster), EXPECT), isError(DataCorruptionError, /cluster .* is invalid: cluster 'site-a' network 0 VLAN/));
  // The exported fields the plan reads and the spec the import creates from must describe one VM.
  const twoVms = vmConfig();
  twoVms.memoryMib = twoVms.spec.memoryMib * 2;
  assert.throws(() => openSaveSet(metadata(saveSet(twoVms)), EXPECT), isError(DataCorruptionError, /config.memoryMib is \d+, its spec's \d+/));
  const otherDisks = vmConfig();
  otherDisks.disks = otherDisks.disks.map((d) => ({ ...d, sizeMib: d.sizeMib + 1 }));
  assert.throws(() => openSaveSet(metadata(saveSet(otherDisks)), EXPECT), isError(DataCorruptionError, /config.disks are/));
  // The cluster's registration time is kept as it was.
  assert.equal(openSaveSet(metadata(saveSet()), EXPECT).cluster.registeredAt, SITE_A.registeredAt);
});

// ---- restore plans ----

test('plan: an identical cluster needs no change', () => {
  const s = saveSet();
  const plan = planRestore(s, identicalView(), emptyMaps());
  assert.deepEqual(plan, {
    backupId: 'bk-1',
    vmName: 'web',
    sourceCluster: 'site-a',
    destinationCluster: 'site-a2',
    changes: [],
    problems: [],
    datastore: { name: 'fast', path: '/srv/ds-fast' },
    hosts: ['h2', 'h1'],
    cpuModel: 'Icelake-Server',
    networks: ['prod', 'mgmt'],
    memoryMib: 1024,
    diskMib: 192,
  });
  assert.deepEqual(applyPlan(s.config, plan), s.config.spec);
});

test('plan: renamed networks on the same VLANs, another datastore, an older CPU model', () => {
  const s = saveSet();
  const plan = planRestore(s, siteB(), emptyMaps());
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(plan.changes, [
    // nic0: two networks carry VLAN 10 on other bridges: the first by name.
    { kind: 'network', item: 'nic0', from: 'prod', to: 'alpha', rule: 'same VLAN' },
    // nic1: untagged on admin and netz; netz is on the NIC's bridge br1.
    { kind: 'network', item: 'nic1', from: 'mgmt', to: 'netz', rule: 'same VLAN' },
    // 'fast' exists but lacks room (100 MiB < 192); 'huge' is not mounted.
    { kind: 'datastore', item: 'datastore', from: 'fast', to: 'bulk', rule: 'most free space (9000 MiB free)' },
    { kind: 'path', item: 'disk0', from: '/srv/ds-fast/vms/web/disk0', to: '/data/bulk/vms/web/disk0', rule: 'follows the datastore' },
    { kind: 'path', item: 'disk1', from: '/srv/ds-fast/vms/web/disk1', to: '/data/bulk/vms/web/disk1', rule: 'follows the datastore' },
    { kind: 'cpu-model', item: 'cpu', from: 'Icelake-Server', to: 'Skylake-Server', rule: 'compatible CPU model (older: the guest boots with fewer CPU features)' },
  ]);
  assert.deepEqual(plan.datastore, { name: 'bulk', path: '/data/bulk' });
  assert.deepEqual(plan.hosts, ['b2', 'b1'], 'on bulk, with the memory, most free memory first (b4 has 512 MiB)');
  assert.deepEqual(plan.networks, ['alpha', 'netz']);
  const spec = applyPlan(s.config, plan);
  assert.deepEqual(spec, { ...s.config.spec, cpuModel: 'Skylake-Server', nics: [{ network: 'alpha' }, { network: 'netz' }] });
  assert.equal(s.config.spec.cpuModel, 'Icelake-Server', 'the save set is not changed');
});

test('plan: the same datastore name at another path moves the disks; a disk outside the datastore goes to its top', () => {
  const cfg = vmConfig();
  cfg.disks[1] = { ...cfg.disks[1]!, path: '/elsewhere/disk1.qcow2' };
  const v = view({ ...SITE_A, name: 'site-c' }, [store('fast', '/mnt/fast', 1000)], [host('h1', 'fast')]);
  const plan = planRestore(saveSet(cfg), v, emptyMaps());
  assert.deepEqual(plan.changes, [
    { kind: 'path', item: 'disk0', from: '/srv/ds-fast/vms/web/disk0', to: '/mnt/fast/vms/web/disk0', rule: 'follows the datastore' },
    { kind: 'path', item: 'disk1', from: '/elsewhere/disk1.qcow2', to: '/mnt/fast/disk1.qcow2', rule: 'follows the datastore' },
  ]);
});

test('plan: --map overrides every rule, including a network on another VLAN', () => {
  const plan = planRestore(saveSet(), siteB(), maps('net:prod=lab30', 'net:mgmt=admin', 'store:fast=slow', 'cpu:Icelake-Server=Haswell'));
  assert.deepEqual(plan.problems, []);
  assert.deepEqual(plan.changes, [
    { kind: 'network', item: 'nic0', from: 'prod', to: 'lab30', rule: '--map (VLAN 10 -> 30)' },
    { kind: 'network', item: 'nic1', from: 'mgmt', to: 'admin', rule: '--map' },
    { kind: 'datastore', item: 'datastore', from: 'fast', to: 'slow', rule: '--map' },
    { kind: 'path', item: 'disk0', from: '/srv/ds-fast/vms/web/disk0', to: '/data/slow/vms/web/disk0', rule: 'follows the datastore' },
    { kind: 'path', item: 'disk1', from: '/srv/ds-fast/vms/web/disk1', to: '/data/slow/vms/web/disk1', rule: 'follows the datastore' },
    { kind: 'cpu-model', item: 'cpu', from: 'Icelake-Server', to: 'Haswell', rule: '--map' },
  ]);
  assert.deepEqual(plan.hosts, ['b3']);
  // A map even beats an exact match on the identical cluster.
  const same = planRestore(saveSet(), identicalView(), maps('net:mgmt=prod'));
  assert.deepEqual(same.changes, [{ kind: 'network', item: 'nic1', from: 'mgmt', to: 'prod', rule: '--map (untagged -> VLAN 10)' }]);
});

test('plan: every impossible requirement is listed at once, each naming its item', () => {
  const cfg = vmConfig();
  const v = view(
    {
      ...SITE_B,
      name: 'site-c',
      networks: [
        { name: 'prod', bridge: 'br0', vlan: 30 },
        { name: 'lab', bridge: 'br2', vlan: 30 },
      ],
      cpuModels: ['EPYC', 'EPYC-Rome'],
      maxVmMemoryMib: 512,
    },
    [store('fast', '/srv/ds-fast', 10), store('cold', '/cold', 0, [])],
    [host('c1', 'fast', 512), host('c2', 'fast', 768), host('c3', 'fast', 99_999, 99_999, 'down')],
  );
  const plan = planRestore(saveSet(cfg), v, maps('net:nope=lab'));
  const p = plan.problems;
  assert.equal(p.length, 7, p.join('\n'));
  assert.match(p[0]!, /^nic0: no network of cluster 'site-c' carries VLAN 10 \(the VM's network 'prod' on bridge br0\); its network 'prod' carries VLAN 30; site-c has: prod \(VLAN 30\), lab \(VLAN 30\)\. Map it with --map net:prod=NAME$/);
  assert.match(p[1]!, /^nic1: no network of cluster 'site-c' is untagged \(the VM's network 'mgmt' on bridge br1\); site-c has: .*Map it with --map net:mgmt=NAME$/);
  assert.match(p[2]!, /^datastore: no datastore of cluster 'site-c' has room for the VM's disks \(192 MiB\): fast \(10 MiB free\), cold \(not mounted by any up host\)$/);
  assert.match(p[3]!, /^cpu: CPU model Icelake-Server has no compatible model in cluster 'site-c' \(it offers: EPYC, EPYC-Rome\); map it with --map cpu:Icelake-Server=MODEL$/);
  assert.match(p[4]!, /^memory: the VM has 1024 MiB of memory, over the limit of cluster 'site-c' \(512 MiB per VM\)$/);
  assert.match(p[5]!, /^memory: the VM needs 1024 MiB of memory; every host of cluster 'site-c' has less: c1 \(512 MiB\), c2 \(768 MiB\)$/);
  assert.match(p[6]!, /^--map net:nope=lab: the VM has no NIC on network 'nope' \(its networks: prod, mgmt\)$/);
  assert.equal(plan.datastore, null);
  assert.deepEqual(plan.hosts, []);
  assert.throws(() => applyPlan(cfg, plan), isError(FailedPreconditionError, /restore of backup bk-1 to cluster 'site-c' cannot go ahead: nic0: /));
});

test('plan: bad --map targets and maps of things the VM does not use are problems', () => {
  const plan = planRestore(
    saveSet(),
    siteB(),
    maps('net:prod=missing', 'store:fast=huge', 'cpu:Icelake-Server=EPYC-Rome', 'store:other=slow', 'cpu:Haswell=Haswell'),
  );
  assert.deepEqual(plan.problems, [
    "nic0: --map net:prod=missing: cluster 'site-b' has no network 'missing' (site-b has: zeta (VLAN 10), alpha (VLAN 10), lab30 (VLAN 30), admin (untagged), netz (untagged))",
    "datastore: --map store:fast=huge: datastore 'huge' is not mounted by any up host of cluster 'site-b'",
    "cpu: --map cpu:Icelake-Server=EPYC-Rome: cluster 'site-b' does not offer CPU model 'EPYC-Rome' (it offers: Haswell, Skylake-Server)",
    "--map store:other=slow: the VM's disks are on datastore 'fast', not 'other'",
    "--map cpu:Haswell=Haswell: the VM's CPU model is 'Icelake-Server', not 'Haswell'",
  ]);
  const noRoom = planRestore(saveSet(), siteB(), maps('store:fast=fast'));
  assert.deepEqual(noRoom.problems, ["datastore: --map store:fast=fast: datastore 'fast' has 100 MiB free, the VM's disks need 192 MiB"]);
  const ghost = planRestore(saveSet(), siteB(), maps('store:fast=ghost'));
  assert.deepEqual(ghost.problems, ["datastore: --map store:fast=ghost: cluster 'site-b' has no datastore 'ghost' (it has: fast, slow, bulk, huge)"]);
});

test('plan: no host up, and a datastore no fitting host is on', () => {
  const down = view(SITE_A, [store('fast', '/srv/ds-fast', 10_000)], [host('h1', 'fast', 8192, 8192, 'down')]);
  assert.deepEqual(planRestore(saveSet(), down, emptyMaps()).problems, ["hosts: cluster 'site-a' has no host up"]);
  // The datastore is mounted, but the one host on it is too small; the big host is on another datastore.
  const split = view(SITE_A, [store('fast', '/srv/ds-fast', 10_000, ['h1'])], [host('h1', 'fast', 512), host('h2', 'other', 8192)]);
  const p = planRestore(saveSet(), split, emptyMaps()).problems;
  assert.equal(p.length, 1);
  assert.match(p[0]!, /^hosts: no host up in cluster 'site-a' mounts datastore 'fast' and has 1024 MiB of memory; up: h1 \(datastore 'fast', 512 MiB\), h2 \(datastore 'other', 8192 MiB\)$/);
});

test('plan: a save set whose cluster named no datastore keeps the one at the same path', () => {
  const cfg = vmConfig();
  cfg.datastore = { name: '', path: '/srv/ds-fast' };
  const plan = planRestore(saveSet(cfg), identicalView(), emptyMaps());
  assert.deepEqual([plan.changes, plan.problems, plan.datastore], [[], [], { name: 'fast', path: '/srv/ds-fast' }]);
});

test('plan: a NIC on a network its cluster did not list needs a map, unless the destination has that name', () => {
  const cfg = vmConfig();
  cfg.nics[1] = { ...cfg.nics[1]!, network: 'gone', bridge: '', vlan: 0 };
  cfg.spec = { ...cfg.spec, nics: [{ network: 'prod' }, { network: 'gone' }] };
  const plan = planRestore(saveSet(cfg), siteB(), emptyMaps());
  assert.equal(plan.problems.length, 1, plan.problems.join('\n'));
  assert.match(plan.problems[0]!, /^nic1: the VM's network 'gone' was not a network of its cluster at the backup, so its VLAN is unknown, .*--map net:gone=NAME$/);
  assert.deepEqual(planRestore(saveSet(cfg), siteB(), maps('net:gone=admin')).problems, []);
  const withGone = siteB();
  withGone.config = { ...withGone.config, networks: [...withGone.config.networks, { name: 'gone', bridge: 'br4', vlan: 40 }] };
  const kept = planRestore(saveSet(cfg), withGone, emptyMaps());
  assert.deepEqual([kept.problems, kept.networks], [[], ['alpha', 'gone']]);
});
