/**
 * QEMU x86 CPU models, by vendor and generation, so a restore can pick a model the destination cluster offers
 * when it does not offer the VM's own (seed 003).
 *
 * Within a vendor's line each model is (close to) a superset of the features of the models before it, so:
 *  - a newer model of the same vendor runs the guest with every feature it had (and some it ignores);
 *  - an older one runs it with fewer features (software that probed for them at boot may need a restart);
 *  - a model of another vendor is never substituted: guests key microcode, mitigations and drivers on the vendor.
 * Variants that drop a feature (Haswell-noTSX, Skylake-Client) sit just before the model they are a subset of.
 * The generic models (qemu64, kvm64) are the baseline every x86 host can offer.
 *
 * Names compare case-sensitively, as QEMU's `-cpu` does. Models not in the catalog are "unknown": they are only
 * ever matched by their exact name.
 */

export type CpuVendor = 'generic' | 'intel' | 'amd';

export interface CpuModelInfo {
  name: string;
  vendor: CpuVendor;
  /** Position in its vendor's line, oldest 0; comparable only between models of one vendor. */
  generation: number;
}

/** Generic models, the preferred first (what a generic guest is best restored on). */
const GENERIC = ['qemu64', 'kvm64'] as const;

/** Intel, oldest to newest. */
const INTEL = [
  'Conroe',
  'Penryn',
  'Nehalem',
  'Westmere',
  'SandyBridge',
  'IvyBridge',
  'Haswell-noTSX',
  'Haswell',
  'Broadwell-noTSX',
  'Broadwell',
  'Skylake-Client',
  'Skylake-Server',
  'Cascadelake-Server',
  'Cooperlake',
  'Icelake-Server',
  'SapphireRapids',
  'GraniteRapids',
] as const;

/** AMD, oldest to newest. */
const AMD = ['Opteron_G1', 'Opteron_G2', 'Opteron_G3', 'Opteron_G4', 'Opteron_G5', 'EPYC', 'EPYC-Rome', 'EPYC-Milan', 'EPYC-Genoa'] as const;

const CATALOG: ReadonlyMap<string, CpuModelInfo> = new Map(
  [
    ...GENERIC.map((name, generation) => ({ name, vendor: 'generic' as const, generation })),
    ...INTEL.map((name, generation) => ({ name, vendor: 'intel' as const, generation })),
    ...AMD.map((name, generation) => ({ name, vendor: 'amd' as const, generation })),
  ].map((i) => [i.name, i]),
);

/** Every model the catalog knows, generic first, then Intel and AMD oldest to newest. */
export const KNOWN_CPU_MODELS: readonly string[] = [...CATALOG.keys()];

/** The catalog's entry for a model name, or undefined for a model it does not know. */
export function cpuModelInfo(name: string): CpuModelInfo | undefined {
  return CATALOG.get(name);
}

export const CPU_RULE_SAME = 'same CPU model';
export const CPU_RULE_NEWER = 'compatible CPU model (newer: a superset of its features)';
export const CPU_RULE_OLDER = 'compatible CPU model (older: the guest boots with fewer CPU features)';
export const CPU_RULE_GENERIC = 'compatible CPU model (generic guest)';

/**
 * The model among `offered` a guest of model `source` is best run on, and the rule that chose it; null when none
 * fits. In order:
 *  1. `source` itself, when offered;
 *  2. a generic source (qemu64, kvm64) runs on anything: a generic offered model (qemu64 first), else the oldest
 *     known offered model (ties: the first offered) — the oldest gives the guest the least surprise;
 *  3. the oldest offered model of the same vendor that is newer than `source` (no feature is lost);
 *  4. the newest offered model of the same vendor that is older than `source` (the fewest features lost).
 * An unknown source, or offered models only of another vendor (or unknown, or generic for a non-generic
 * source), give null: the operator decides with `--map cpu:SOURCE=MODEL`.
 */
export function compatibleCpuModel(source: string, offered: readonly string[]): { model: string; rule: string } | null {
  if (offered.includes(source)) return { model: source, rule: CPU_RULE_SAME };
  const src = cpuModelInfo(source);
  if (!src) return null;
  const known = offered.flatMap((name) => {
    const info = cpuModelInfo(name);
    return info ? [info] : [];
  });
  if (src.vendor === 'generic') {
    const generic = GENERIC.find((g) => offered.includes(g));
    if (generic) return { model: generic, rule: CPU_RULE_GENERIC };
    const oldest = pick(known, (a, b) => a.generation < b.generation);
    return oldest ? { model: oldest.name, rule: CPU_RULE_GENERIC } : null;
  }
  const sameVendor = known.filter((i) => i.vendor === src.vendor);
  const newer = pick(
    sameVendor.filter((i) => i.generation > src.generation),
    (a, b) => a.generation < b.generation,
  );
  if (newer) return { model: newer.name, rule: CPU_RULE_NEWER };
  const older = pick(
    sameVendor.filter((i) => i.generation < src.generation),
    (a, b) => a.generation > b.generation,
  );
  if (older) return { model: older.name, rule: CPU_RULE_OLDER };
  return null;
}

/** The first item no later item is `better` than (stable: ties keep the earlier). */
function pick<T>(items: readonly T[], better: (a: T, b: T) => boolean): T | undefined {
  let best: T | undefined;
  for (const i of items) if (best === undefined || better(i, best)) best = i;
  return best;
}
