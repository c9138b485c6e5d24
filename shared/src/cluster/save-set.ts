/**
 * Save sets (seed 003): a backup's VM configuration and cluster configuration, stored in the backup's manifest
 * metadata under the key `saveSet`, sealed with a SHA-256 digest of its canonical JSON.
 *
 * Opening one checks, in this order, so each failure gets the right name:
 *  1. the metadata is a JSON object (else the manifest is corrupt);
 *  2. it holds a save set (else the backup predates save sets, or another tool made it: restore it to a host);
 *  3. the format is ours (else it is foreign: another tool's or a later version's);
 *  4. the digest matches the content (else it is corrupt; checked before any field is trusted, so a tampered
 *     backup id or disk list is reported as corruption, not as a mismatch);
 *  5. it belongs to this backup (a manifest copied whole from another backup carries a valid digest);
 *  6. it lists the backup's disks, names and content hashes in order;
 *  7. its content has the shape a restore relies on.
 */
import { createHash } from 'node:crypto';
import { DataCorruptionError, FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { validateIdentity } from '../identity.js';
import { requireCpuModel, validateVmSpec, type VmSpecInput } from '../validate.js';
import { validateClusterConfig } from './config.js';
import { SAVE_SET_FORMAT, type SaveSet } from './types.js';

/**
 * JSON with every object's keys sorted (by UTF-16 code units), no whitespace, arrays in order, and undefined
 * (and function) fields dropped: equal values give equal text, whatever order their keys were built in. Values
 * JSON.stringify would change (toJSON, non-finite numbers, undefined in arrays) are changed the same way.
 */
export function canonicalJson(value: unknown): string {
  return encode(value) ?? 'null';
}

function encode(value: unknown): string | undefined {
  if (value !== null && typeof value === 'object' && 'toJSON' in value && typeof value.toJSON === 'function') {
    return encode((value.toJSON as () => unknown).call(value));
  }
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return undefined;
  if (typeof value === 'bigint') throw new TypeError('canonicalJson: a bigint has no JSON form');
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((v: unknown) => encode(v) ?? 'null').join(',')}]`;
  const parts: string[] = [];
  for (const key of Object.keys(value).sort()) {
    const v = encode((value as Record<string, unknown>)[key]);
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${v}`);
  }
  return `{${parts.join(',')}}`;
}

function digestOf(fields: Record<string, unknown>): string {
  return createHash('sha256').update(canonicalJson(fields)).digest('hex');
}

/** The save set with its format tag and its digest over every other field. */
export function sealSaveSet(s: Omit<SaveSet, 'format' | 'digest'>): SaveSet {
  // A caller may hand in an opened save set: its old digest must not become part of the new content.
  const { digest: _digest, format: _format, ...rest } = s as Omit<SaveSet, 'format' | 'digest'> & Partial<Pick<SaveSet, 'format' | 'digest'>>;
  const body: Omit<SaveSet, 'digest'> = { ...rest, format: SAVE_SET_FORMAT };
  return { ...body, digest: digestOf(body) };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function short(hex: string): string {
  return hex.length > 12 ? `${hex.slice(0, 12)}…` : hex;
}

function quote(v: unknown): string {
  return JSON.stringify(v) ?? String(v);
}

/**
 * Reads the save set of backup `expect.backupId` from its manifest's metadata, and checks it (see the module
 * comment for the order). `expect.disks` are the manifest's disks, as the repository recorded them.
 */
export function openSaveSet(metadataJson: string, expect: { backupId: string; disks: readonly { name: string; contentHash: string }[] }): SaveSet {
  const backup = expect.backupId;
  let meta: unknown;
  try {
    meta = JSON.parse(metadataJson);
  } catch (err) {
    throw new DataCorruptionError(`backup ${backup}: its manifest's metadata is not valid JSON`, { cause: err });
  }
  if (!isRecord(meta)) throw new DataCorruptionError(`backup ${backup}: its manifest's metadata is not valid JSON (not an object)`);
  const raw = meta.saveSet;
  if (raw === undefined || raw === null) {
    throw new FailedPreconditionError(
      `backup ${backup} has no save set (it was made before save sets or by another tool): restore it to a host with --to HOST`,
    );
  }
  const corrupt = (reason: string, cause?: unknown): DataCorruptionError =>
    new DataCorruptionError(`the save set of backup ${backup} is corrupt: ${reason}`, cause === undefined ? undefined : { cause });
  if (!isRecord(raw)) throw corrupt(`it is not a JSON object (got ${quote(raw)})`);
  if (raw.format !== SAVE_SET_FORMAT) {
    const found = typeof raw.format === 'string' ? `format '${raw.format}'` : `format ${quote(raw.format)}`;
    throw new FailedPreconditionError(`the save set of backup ${backup} is not a doppel save set (${found}, expected '${SAVE_SET_FORMAT}')`);
  }
  const { digest, ...body } = raw;
  if (typeof digest !== 'string' || digest === '') throw corrupt('it has no digest');
  const actual = digestOf(body);
  if (digest !== actual) throw corrupt(`its digest says ${short(digest)}, its content hashes to ${short(actual)}`);
  if (raw.backupId !== backup) {
    const owner = typeof raw.backupId === 'string' ? raw.backupId : quote(raw.backupId);
    throw new FailedPreconditionError(`the save set in backup ${backup} belongs to backup ${owner}, not ${backup}: its manifest was copied from another backup`);
  }
  checkDisks(raw.disks, expect.disks, corrupt);
  checkShape(raw, corrupt);
  return raw as unknown as SaveSet;
}

type Corrupt = (reason: string, cause?: unknown) => DataCorruptionError;

function checkDisks(value: unknown, want: readonly { name: string; contentHash: string }[], corrupt: Corrupt): void {
  if (!Array.isArray(value)) throw corrupt(`its disks are not a list (got ${quote(value)})`);
  const n = Math.max(value.length, want.length);
  for (let i = 0; i < n; i++) {
    const got: unknown = value[i];
    const w = want[i];
    if (w === undefined) throw corrupt(`it lists ${value.length} disks, the backup has ${want.length} (disk ${i} is extra)`);
    if (got === undefined) throw corrupt(`it lists ${value.length} disks, the backup has ${want.length} (disk ${i} '${w.name}' is missing)`);
    if (!isRecord(got) || typeof got.name !== 'string' || typeof got.contentHash !== 'string') {
      throw corrupt(`its disk ${i} is not {name, contentHash} (got ${quote(got)})`);
    }
    if (got.name !== w.name) throw corrupt(`its disk ${i} is '${got.name}', the backup's disk ${i} is '${w.name}'`);
    if (got.contentHash !== w.contentHash) {
      throw corrupt(`its disk '${w.name}' has content hash ${short(got.contentHash)}, the backup's has ${short(w.contentHash)}`);
    }
  }
}

/** Field checks for the content a restore reads; each failure names the field by its path in the save set. */
class Shape {
  constructor(private readonly corrupt: Corrupt) {}

  record(field: string, v: unknown): Record<string, unknown> {
    if (!isRecord(v)) throw this.corrupt(`${field} must be an object (got ${quote(v)})`);
    return v;
  }

  list(field: string, v: unknown): unknown[] {
    if (!Array.isArray(v)) throw this.corrupt(`${field} must be a list (got ${quote(v)})`);
    return v;
  }

  string(field: string, v: unknown, nonEmpty = false): string {
    if (typeof v !== 'string' || (nonEmpty && v === '')) throw this.corrupt(`${field} must be a ${nonEmpty ? 'non-empty ' : ''}string (got ${quote(v)})`);
    return v;
  }

  int(field: string, v: unknown, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw this.corrupt(`${field} must be an integer of at least ${min} (got ${quote(v)})`);
    return v;
  }

  /** A finite number of at least 0 (space figures may be fractional). */
  amount(field: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw this.corrupt(`${field} must be a number of at least 0 (got ${quote(v)})`);
    return v;
  }

  absPath(field: string, v: unknown): string {
    const p = this.string(field, v);
    if (!p.startsWith('/')) throw this.corrupt(`${field} must be an absolute path (got ${quote(v)})`);
    return p;
  }

  /** Runs a shared validator, reporting its InvalidArgumentError as corruption of `what`. */
  valid<T>(what: string, check: () => T): T {
    try {
      return check();
    } catch (err) {
      if (err instanceof InvalidArgumentError) throw this.corrupt(`${what} is invalid: ${err.message}`, err);
      throw err;
    }
  }
}

function checkShape(s: Record<string, unknown>, corrupt: Corrupt): void {
  const sh = new Shape(corrupt);
  sh.string('vm', s.vm, true);
  sh.string('exportedAt', s.exportedAt);
  const by = sh.record('exportedBy', s.exportedBy);
  sh.string('exportedBy.host', by.host);
  sh.string('exportedBy.driver', by.driver);

  const c = sh.record('config', s.config);
  sh.string('config.id', c.id, true);
  sh.string('config.name', c.name, true);
  sh.int('config.memoryMib', c.memoryMib, 1);
  sh.int('config.vcpus', c.vcpus, 1);
  sh.valid('config.cpuModel', () => requireCpuModel('cpu model', c.cpuModel));
  const spec = sh.valid("config.spec (the VM's specification)", () => validateVmSpec(sh.record('config.spec', c.spec) as VmSpecInput));
  sh.valid('config.identity', () => validateIdentity(c.identity, 'identity'));
  sh.record('config.workload', c.workload);
  sh.list('config.bypass', c.bypass);

  const nics = sh.list('config.nics', c.nics);
  nics.forEach((raw, i) => {
    const f = `config.nics[${i}]`;
    const n = sh.record(f, raw);
    sh.string(`${f}.name`, n.name);
    sh.string(`${f}.network`, n.network, true);
    sh.string(`${f}.bridge`, n.bridge);
    sh.int(`${f}.vlan`, n.vlan, 0);
    sh.string(`${f}.mac`, n.mac);
  });
  const specNets = (spec.nics ?? []).map((n) => n.network);
  const nicNets = nics.map((n) => (n as { network: string }).network);
  if (specNets.join('\0') !== nicNets.join('\0')) {
    throw corrupt(`config.nics are on networks [${nicNets.join(', ')}], its spec's NICs on [${specNets.join(', ')}]`);
  }

  const ds = sh.record('config.datastore', c.datastore);
  sh.string('config.datastore.name', ds.name);
  sh.absPath('config.datastore.path', ds.path);
  sh.list('config.disks', c.disks).forEach((raw, i) => {
    const f = `config.disks[${i}]`;
    const d = sh.record(f, raw);
    sh.string(`${f}.name`, d.name, true);
    sh.int(`${f}.sizeMib`, d.sizeMib, 0);
    sh.string(`${f}.image`, d.image);
    sh.string(`${f}.format`, d.format);
    sh.string(`${f}.path`, d.path, true);
  });

  // The plan reads the exported fields and the import creates the VM from its spec: they must describe one VM.
  const disks = (c.disks as { name: string; sizeMib: number }[]).map((d) => `${d.name}:${d.sizeMib}`).join(',');
  const specDisks = spec.disks.map((d) => `${d.name}:${d.sizeMib}`).join(',');
  if (disks !== specDisks) throw corrupt(`config.disks are [${disks}], its spec's [${specDisks}]`);
  if (c.memoryMib !== spec.memoryMib) throw corrupt(`config.memoryMib is ${String(c.memoryMib)}, its spec's ${spec.memoryMib}`);
  if (spec.cpuModel && c.cpuModel !== spec.cpuModel) throw corrupt(`config.cpuModel is ${String(c.cpuModel)}, its spec's ${spec.cpuModel}`);

  const cluster = sh.record('cluster', s.cluster);
  sh.valid("cluster (the VM's cluster configuration)", () => validateClusterConfig(cluster));
  sh.string('cluster.registeredAt', cluster.registeredAt);

  sh.list('datastores', s.datastores).forEach((raw, i) => {
    const f = `datastores[${i}]`;
    const d = sh.record(f, raw);
    sh.string(`${f}.name`, d.name, true);
    sh.absPath(`${f}.path`, d.path);
    sh.amount(`${f}.capacityMib`, d.capacityMib);
    sh.amount(`${f}.freeMib`, d.freeMib);
    sh.amount(`${f}.usedMib`, d.usedMib);
    sh.list(`${f}.mountedBy`, d.mountedBy).forEach((h, j) => sh.string(`${f}.mountedBy[${j}]`, h, true));
  });
}
