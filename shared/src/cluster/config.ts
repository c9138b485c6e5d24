/**
 * A cluster's configuration: the checks `doppel cluster add` runs, the configuration of a cluster no one
 * registered (derived from its agents), and the CLI's `--network` and `--datastore` syntax.
 *
 * Every check throws InvalidArgumentError naming the cluster, the field and what is allowed, because the
 * message reaches an operator typing flags.
 */
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { requireCpuModel, requireInt, requireName } from '../validate.js';
import type { ClusterConfig, ClusterDatastore, ClusterNetwork } from './types.js';

/** The network of a cluster no one registered: libvirt's default NAT bridge, untagged. */
export const DEFAULT_NETWORK: Readonly<ClusterNetwork> = Object.freeze({ name: 'default', bridge: 'virbr0', vlan: 0 });

/** The CPU model of a cluster no one registered: the generic one every x86 host offers. */
export const DEFAULT_CPU_MODEL = 'qemu64';

export const CLUSTER_LIMITS = {
  hosts: 1000,
  networks: 4095,
  datastores: 1000,
  cpuModels: 100,
  /** 802.1Q: 12 bits, 4095 reserved; 0 here means untagged. */
  vlan: { min: 0, max: 4094 },
  /** Linux interface names: IFNAMSIZ 16 including the NUL. */
  bridgeChars: 15,
  pathChars: 4095,
  /** 2^40 MiB (1 EiB): a bound only so a typo is caught. */
  capacityMib: 2 ** 40,
  /** 2^30 MiB (1 PiB): a bound only so a typo is caught. */
  maxVmMemoryMib: 2 ** 30,
} as const;

/** A cluster configuration as a caller may give it: anything may be missing or wrong until validated. */
export type ClusterConfigInput = { [K in keyof ClusterConfig]?: unknown };

const BRIDGE_RE = /^[A-Za-z0-9_.-]{1,15}$/;

function quote(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireList(field: string, value: unknown, min: number, max: number): unknown[] {
  const list = value ?? [];
  if (!Array.isArray(list)) throw new InvalidArgumentError(`${field} must be a list (got ${quote(value)})`);
  if (list.length < min || list.length > max) {
    throw new InvalidArgumentError(`${field} must list ${min === 0 ? 'at most' : `${min} to`} ${max} (got ${list.length})`);
  }
  return list;
}

function requireRecord(field: string, value: unknown): Record<string, unknown> {
  if (!isRecord(value)) throw new InvalidArgumentError(`${field} must be an object (got ${quote(value)})`);
  return value;
}

function requireUnique(field: string, seen: Set<string>, value: string): void {
  if (seen.has(value)) throw new InvalidArgumentError(`${field} '${value}' is listed twice`);
  seen.add(value);
}

/** A Linux bridge (interface) name: 1-15 of letters, digits, '_', '.', '-', and not '.' or '..'. */
export function requireBridge(field: string, value: unknown): string {
  if (typeof value !== 'string' || !BRIDGE_RE.test(value) || value === '.' || value === '..') {
    throw new InvalidArgumentError(
      `${field} must be a Linux interface name: 1-${CLUSTER_LIMITS.bridgeChars} letters, digits, '_', '.' or '-' (got ${quote(value)})`,
    );
  }
  return value;
}

/**
 * An absolute, normalized directory below '/': no '.' or '..' segment, no '//', no trailing '/'. Datastore paths
 * are compared as strings (a restore rewrites disk paths by replacing this prefix), so one spelling per directory.
 */
export function requireDatastorePath(field: string, value: unknown): string {
  const ok =
    typeof value === 'string' &&
    value.length <= CLUSTER_LIMITS.pathChars &&
    value.startsWith('/') &&
    value !== '/' &&
    !value.endsWith('/') &&
    !value.includes('\0') &&
    path.posix.normalize(value) === value &&
    !value.split('/').includes('..');
  if (!ok) {
    throw new InvalidArgumentError(
      `${field} must be an absolute, normalized directory path below '/' (no '.' or '..' parts, no '//' or trailing '/') (got ${quote(value)})`,
    );
  }
  return value;
}

function validateNetworks(where: string, value: unknown): ClusterNetwork[] {
  const names = new Set<string>();
  return requireList(`${where} networks`, value, 0, CLUSTER_LIMITS.networks).map((raw, i) => {
    const n = requireRecord(`${where} network ${i}`, raw);
    const name = requireName(`${where} network ${i} name`, n.name);
    requireUnique(`${where} network`, names, name);
    return {
      name,
      bridge: requireBridge(`${where} network ${i} bridge`, n.bridge),
      vlan: requireInt(`${where} network ${i} VLAN`, n.vlan ?? 0, CLUSTER_LIMITS.vlan.min, CLUSTER_LIMITS.vlan.max),
    };
  });
}

function validateDatastores(where: string, value: unknown): ClusterDatastore[] {
  const names = new Set<string>();
  const paths = new Map<string, string>();
  return requireList(`${where} datastores`, value, 0, CLUSTER_LIMITS.datastores).map((raw, i) => {
    const d = requireRecord(`${where} datastore ${i}`, raw);
    const name = requireName(`${where} datastore ${i} name`, d.name);
    requireUnique(`${where} datastore`, names, name);
    const p = requireDatastorePath(`${where} datastore '${name}' path`, d.path);
    const other = paths.get(p);
    if (other !== undefined) throw new InvalidArgumentError(`${where} datastores '${other}' and '${name}' have the same path ${p}`);
    paths.set(p, name);
    return { name, path: p, capacityMib: requireInt(`${where} datastore '${name}' capacity (MiB)`, d.capacityMib ?? 0, 0, CLUSTER_LIMITS.capacityMib) };
  });
}

/**
 * Checks and normalizes a cluster configuration for registration; `registeredAt` becomes `now`. Hosts, networks
 * and datastores may be empty (agents join with `--cluster NAME`); at least one CPU model is required, since a
 * VM created in the cluster gets the first.
 */
export function validateClusterConfig(input: unknown, now: Date = new Date()): ClusterConfig {
  const c = requireRecord('cluster', input) as ClusterConfigInput;
  const name = requireName('cluster name', c.name);
  const where = `cluster '${name}'`;
  const hostNames = new Set<string>();
  const hosts = requireList(`${where} hosts`, c.hosts, 0, CLUSTER_LIMITS.hosts).map((h, i) => {
    const host = requireName(`${where} host ${i}`, h);
    requireUnique(`${where} host`, hostNames, host);
    return host;
  });
  const cpuList = c.cpuModels ?? [];
  if (Array.isArray(cpuList) && cpuList.length === 0) {
    throw new InvalidArgumentError(`${where} must offer at least one CPU model (e.g. --cpu-model ${DEFAULT_CPU_MODEL})`);
  }
  const models = new Set<string>();
  const cpuModels = requireList(`${where} CPU models`, cpuList, 1, CLUSTER_LIMITS.cpuModels).map((m, i) => {
    const model = requireCpuModel(`${where} CPU model ${i}`, m);
    requireUnique(`${where} CPU model`, models, model);
    return model;
  });
  return {
    name,
    hosts,
    networks: validateNetworks(where, c.networks),
    datastores: validateDatastores(where, c.datastores),
    cpuModels,
    maxVmMemoryMib: requireInt(`${where} max VM memory (MiB)`, c.maxVmMemoryMib ?? 0, 0, CLUSTER_LIMITS.maxVmMemoryMib),
    registeredAt: now.toISOString(),
  };
}

/**
 * The configuration of a cluster its agents named (`--cluster NAME`) but no one registered: its hosts, the
 * default network and CPU model, no memory limit, and one datastore per distinct agent datastore directory,
 * named by the datastore's id (hosts sharing a directory report one id). Hosts without a datastore directory add
 * none; a datastore id seen at a second path keeps its first path, so names stay unique.
 */
export function deriveClusterConfig(
  name: string,
  hosts: readonly { name: string; datastorePath: string; datastoreId: string }[],
): ClusterConfig {
  const hostNames: string[] = [];
  const datastores: ClusterDatastore[] = [];
  for (const h of hosts) {
    if (!hostNames.includes(h.name)) hostNames.push(h.name);
    if (h.datastorePath === '' || h.datastoreId === '') continue;
    if (datastores.some((d) => d.path === h.datastorePath || d.name === h.datastoreId)) continue;
    datastores.push({ name: h.datastoreId, path: h.datastorePath, capacityMib: 0 });
  }
  return {
    name: requireName('cluster name', name),
    hosts: hostNames,
    networks: [{ ...DEFAULT_NETWORK }],
    datastores,
    cpuModels: [DEFAULT_CPU_MODEL],
    maxVmMemoryMib: 0,
    registeredAt: '',
  };
}

const NETWORK_SYNTAX = 'NAME=BRIDGE or NAME=BRIDGE:VLAN (e.g. prod=br0:10; VLAN 0 or none: untagged)';
const DATASTORE_SYNTAX = 'NAME=PATH or NAME=PATH:CAPACITY_MIB (e.g. fast=/srv/ds-fast:4096; capacity 0 or none: the free space)';

/**
 * `--network NAME=BRIDGE[:VLAN]`. Only the syntax is checked here; validateClusterConfig checks the values, so
 * its messages name the network's position and cluster.
 */
export function parseNetworkArg(arg: string): ClusterNetwork {
  const m = /^([^=]+)=([^:]+)(?::(\d+))?$/.exec(arg);
  const name = m?.[1];
  const bridge = m?.[2];
  if (name === undefined || bridge === undefined) {
    throw new InvalidArgumentError(`--network must be ${NETWORK_SYNTAX} (got ${quote(arg)})`);
  }
  const vlan = m?.[3];
  return { name, bridge, vlan: vlan === undefined ? 0 : Number(vlan) };
}

/**
 * `--datastore NAME=PATH[:CAPACITY_MIB]`. The capacity is the digits after the last ':', so a path may hold ':'
 * as long as what follows the last one is not all digits. Only the syntax is checked here (see parseNetworkArg).
 */
export function parseDatastoreArg(arg: string): ClusterDatastore {
  const eq = arg.indexOf('=');
  const name = eq > 0 ? arg.slice(0, eq) : '';
  const rest = eq > 0 ? arg.slice(eq + 1) : '';
  const m = /^(.*):(\d+)$/.exec(rest);
  const p = m?.[1] ?? rest;
  if (name === '' || p === '') {
    throw new InvalidArgumentError(`--datastore must be ${DATASTORE_SYNTAX} (got ${quote(arg)})`);
  }
  return { name, path: p, capacityMib: m?.[2] === undefined ? 0 : Number(m[2]) };
}
