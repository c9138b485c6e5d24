/**
 * A VM's identity as its guest and its network see it: the SMBIOS UUID, the NIC's MAC address, the hostname
 * and the systemd machine id. Two VMs with the same MAC on one network steal each other's traffic, and two
 * with the same machine id get one DHCP lease and confuse journald and monitoring, so a clone or a restore
 * gets a new identity (docs/decisions.md, "VM identity and MAC uniqueness").
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { InvalidArgumentError, ResourceExhaustedError } from './errors.js';

export interface VmIdentity {
  /** SMBIOS system UUID, lower case `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`. */
  uuid: string;
  /** The NIC's MAC address, lower case `xx:xx:xx:xx:xx:xx`, unicast. */
  mac: string;
  /** An RFC 1123 label (1-63 letters, digits and '-', not starting or ending with '-'). */
  hostname: string;
  /** As /etc/machine-id: 32 lower-case hex characters. */
  machineId: string;
}

/** The locally administered prefix QEMU and libvirt give the MACs they generate. */
export const MAC_PREFIX = '52:54:00';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const MAC_RE = /^[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}$/;
const HOSTNAME_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;
const MACHINE_ID_RE = /^[0-9a-f]{32}$/;
/** Tries before giving up on a MAC not in `taken` (2^24 addresses under the prefix). */
const MAC_TRIES = 10_000;

function quote(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/**
 * A MAC address in the canonical form (lower case, ':'-separated); `-` separators and upper case are accepted.
 * Refuses anything but a unicast address: a multicast one (the low bit of the first octet set, broadcast
 * included) or all zeros is no NIC's address.
 */
export function normalizeMac(value: unknown, field = 'mac'): string {
  const text = typeof value === 'string' ? value.trim().toLowerCase() : '';
  if (!MAC_RE.test(text)) {
    throw new InvalidArgumentError(`${field} must be a MAC address of six hex octets, xx:xx:xx:xx:xx:xx (got ${quote(value)})`);
  }
  const mac = text.replace(/-/g, ':');
  if (parseInt(mac.slice(0, 2), 16) & 1) {
    throw new InvalidArgumentError(`${field} must be a unicast MAC address (the low bit of the first octet clear); ${mac} is a multicast address`);
  }
  if (mac === '00:00:00:00:00:00') throw new InvalidArgumentError(`${field} must not be all zeros`);
  return mac;
}

/** Checks an RFC 1123 hostname label. */
export function requireHostname(value: unknown, field = 'hostname'): string {
  if (typeof value !== 'string' || !HOSTNAME_RE.test(value)) {
    throw new InvalidArgumentError(
      `${field} must be an RFC 1123 label: 1-63 letters, digits or '-', not starting or ending with '-' (got ${quote(value)})`,
    );
  }
  return value;
}

/**
 * The hostname a VM name gives: the name itself when it is a valid label, else with each '_' as '-' and
 * without leading or trailing '-' (VM names may hold '_'; hostnames may not).
 */
export function hostnameFromName(name: string): string {
  if (HOSTNAME_RE.test(name)) return name;
  const h = name.replace(/[^A-Za-z0-9-]/g, '-').slice(0, 63).replace(/^-+|-+$/g, '');
  return h === '' ? 'vm' : h;
}

/** A random MAC under 52:54:00 that is not in `taken` (canonical forms, as normalizeMac gives). */
export function newMac(taken: ReadonlySet<string> = new Set()): string {
  for (let i = 0; i < MAC_TRIES; i++) {
    const b = randomBytes(3);
    const mac = `${MAC_PREFIX}:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
    if (!taken.has(mac)) return mac;
  }
  throw new ResourceExhaustedError(`no free MAC address under ${MAC_PREFIX} after ${MAC_TRIES} tries (${taken.size} taken)`);
}

/**
 * A new identity: a random UUID, a random MAC under 52:54:00 not in `taken`, a random machine id (a version 4
 * UUID without dashes, as systemd makes one), and `hostname` (a VM name becomes a valid hostname, see
 * hostnameFromName).
 */
export function newIdentity(hostname: string, taken?: ReadonlySet<string>): VmIdentity {
  return {
    uuid: randomUUID(),
    mac: newMac(taken),
    hostname: hostnameFromName(hostname),
    machineId: randomUUID().replace(/-/g, ''),
  };
}

/** Checks an identity from a request or a record, and returns it in canonical form (lower-case hex). */
export function validateIdentity(input: unknown, field = 'identity'): VmIdentity {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidArgumentError(`${field} must be an object {uuid, mac, hostname, machineId} (got ${quote(input)})`);
  }
  const i = input as Partial<Record<keyof VmIdentity, unknown>>;
  const uuid = typeof i.uuid === 'string' ? i.uuid.toLowerCase() : '';
  if (!UUID_RE.test(uuid)) {
    throw new InvalidArgumentError(`${field}.uuid must be a UUID, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx in hex (got ${quote(i.uuid)})`);
  }
  const machineId = typeof i.machineId === 'string' ? i.machineId.toLowerCase() : '';
  if (!MACHINE_ID_RE.test(machineId) || /^0+$/.test(machineId)) {
    throw new InvalidArgumentError(`${field}.machineId must be 32 hex characters, not all zeros, as /etc/machine-id (got ${quote(i.machineId)})`);
  }
  return {
    uuid,
    mac: normalizeMac(i.mac, `${field}.mac`),
    hostname: requireHostname(i.hostname, `${field}.hostname`),
    machineId,
  };
}
