/** Input checks shared by every API surface; each failure names the field and the allowed range. */
import { InvalidArgumentError } from './errors.js';
import { validateIdentity, type VmIdentity } from './identity.js';
import { isValidName } from './protocol/subjects.js';
import { WORKLOAD_PATTERNS, type BypassVolumeSpec, type DiskSpec, type NicSpec, type VmSpec, type WorkloadPattern } from './protocol/types.js';

export function requireName(field: string, value: unknown): string {
  if (typeof value !== 'string' || !isValidName(value)) {
    throw new InvalidArgumentError(
      `${field} must be 1-63 characters of letters, digits, '-' or '_', starting with a letter or digit (got ${JSON.stringify(value)})`,
    );
  }
  return value;
}

export function requireInt(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidArgumentError(`${field} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`);
  }
  return value;
}

export function requireOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`${field} must be one of ${allowed.map((a) => `'${a}'`).join(', ')} (got ${JSON.stringify(value)})`);
  }
  return value as T;
}

export const VM_LIMITS = {
  memoryMib: { min: 1, max: 256 * 1024 },
  vcpus: { min: 1, max: 256 },
  dirtyRate: { min: 0, max: 10_000_000 },
  diskWriteRate: { min: 0, max: 1_000_000 },
  /** 1 MiB to 1 TiB per disk, at most 16 disks. */
  diskMib: { min: 1, max: 1024 * 1024 },
  disks: { max: 16 },
} as const;

/** A VM created without disks gets this one. */
export const DEFAULT_DISK: DiskSpec = { name: 'disk0', sizeMib: 64, image: 'base' };

function validateDisks(disks: readonly Partial<DiskSpec>[] | null | undefined): DiskSpec[] {
  if (!disks || disks.length === 0) return [{ ...DEFAULT_DISK }];
  if (disks.length > VM_LIMITS.disks.max) throw new InvalidArgumentError(`a VM has at most ${VM_LIMITS.disks.max} disks (got ${disks.length})`);
  const names = new Set<string>();
  return disks.map((d, i) => {
    const name = requireName(`disk ${i} name`, d.name || `disk${i}`);
    if (names.has(name)) throw new InvalidArgumentError(`disk name '${name}' is used twice`);
    names.add(name);
    const image = d.image ?? '';
    if (image !== '') requireName(`disk '${name}' image`, image);
    return { name, sizeMib: requireInt(`disk '${name}' size (MiB)`, d.sizeMib, VM_LIMITS.diskMib.min, VM_LIMITS.diskMib.max), image };
  });
}

/** A CPU model name as QEMU spells them: letters, digits, '-', '_', '.' (e.g. Cascadelake-Server, EPYC-Rome, qemu64). */
export function requireCpuModel(field: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(value)) {
    throw new InvalidArgumentError(`${field} must be 1-63 characters of letters, digits, '.', '-' or '_' (got ${JSON.stringify(value)})`);
  }
  return value;
}

/** At most 8 NICs, each naming a network (checked against the cluster by the coordinator). */
function validateNics(nics: readonly Partial<NicSpec>[] | null | undefined): { nics?: NicSpec[] } {
  if (nics === null || nics === undefined) return {};
  if (!Array.isArray(nics)) throw new InvalidArgumentError(`nics must be a list of {network} (got ${JSON.stringify(nics)})`);
  if (nics.length === 0) return {};
  if (nics.length > 8) throw new InvalidArgumentError(`a VM has at most 8 NICs (got ${nics.length})`);
  return { nics: nics.map((n, i) => ({ network: requireName(`nic${i} network`, typeof n === 'object' && n !== null ? n.network : n) })) };
}

/** Bypass volumes: names unique (and not a disk's), at most 40 characters (the array volume is `<vm id>-<name>`). */
function validateBypass(vols: readonly Partial<BypassVolumeSpec>[] | null | undefined): { bypass?: BypassVolumeSpec[] } {
  if (!vols || vols.length === 0) return {};
  if (vols.length > VM_LIMITS.disks.max) throw new InvalidArgumentError(`a VM has at most ${VM_LIMITS.disks.max} bypass volumes (got ${vols.length})`);
  const names = new Set<string>();
  const bypass = vols.map((v, i) => {
    const name = requireName(`bypass volume ${i} name`, v.name || `bypass${i}`);
    if (name.length > 40) throw new InvalidArgumentError(`bypass volume name '${name}' is longer than 40 characters`);
    if (names.has(name)) throw new InvalidArgumentError(`bypass volume name '${name}' is used twice`);
    names.add(name);
    return { name, sizeMib: requireInt(`bypass volume '${name}' size (MiB)`, v.sizeMib, 1, VM_LIMITS.diskMib.max) };
  });
  return { bypass };
}

/** Checks and normalises a VM spec (fills defaults for vcpus and workload). */
/** A VM spec as a caller may give it: anything may be missing until validated. */
export type VmSpecInput = Partial<Omit<VmSpec, 'workload' | 'disks' | 'identity' | 'nics'>> & {
  nics?: Partial<NicSpec>[] | null;
  workload?: { dirtyRate?: number; pattern?: string; seed?: number; diskWriteRate?: number; tokenRate?: number; bypassWriteRate?: number } | null;
  disks?: Partial<DiskSpec>[] | null;
  bypass?: Partial<BypassVolumeSpec>[] | null;
  identity?: Partial<VmIdentity> | null;
};

export function validateVmSpec(spec: VmSpecInput): VmSpec {
  const w = spec.workload ?? {};
  return {
    name: requireName('vm name', spec.name),
    memoryMib: requireInt('memory (MiB)', spec.memoryMib, VM_LIMITS.memoryMib.min, VM_LIMITS.memoryMib.max),
    vcpus: requireInt('vcpus', spec.vcpus || 1, VM_LIMITS.vcpus.min, VM_LIMITS.vcpus.max),
    workload: {
      dirtyRate: requireInt('dirty rate (pages/s)', w.dirtyRate ?? 0, VM_LIMITS.dirtyRate.min, VM_LIMITS.dirtyRate.max),
      pattern: requireOneOf<WorkloadPattern>('workload pattern', w.pattern || 'uniform', WORKLOAD_PATTERNS),
      seed: requireInt('workload seed', w.seed ?? 1, 0, 0xffffffff),
      diskWriteRate: requireInt('disk write rate (writes/s)', w.diskWriteRate ?? 0, VM_LIMITS.diskWriteRate.min, VM_LIMITS.diskWriteRate.max),
      ...(w.tokenRate ? { tokenRate: requireInt('token rate (steps/s)', w.tokenRate, 0, 10_000) } : {}),
      ...(w.bypassWriteRate ? { bypassWriteRate: requireInt('bypass write rate (writes/s)', w.bypassWriteRate, 0, VM_LIMITS.diskWriteRate.max) } : {}),
    },
    disks: validateDisks(spec.disks),
    ...validateBypass(spec.bypass),
    ...validateNics(spec.nics),
    ...(spec.cpuModel ? { cpuModel: requireCpuModel('cpu model', spec.cpuModel) } : {}),
    // Checked when given; a spec without one stays without (the driver gives the VM one).
    ...(spec.identity === undefined || spec.identity === null ? {} : { identity: validateIdentity(spec.identity, 'identity') }),
  };
}
