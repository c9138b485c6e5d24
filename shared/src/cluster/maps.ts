/**
 * `--map` overrides of a restore: `net:SOURCE=DEST` (a network), `store:SOURCE=DEST` (a datastore) and
 * `cpu:SOURCE=DEST` (a CPU model). Each names a thing of the save set's cluster and the destination's thing to
 * use instead; a map beats every rule of the plan (see plan.ts).
 */
import { InvalidArgumentError } from '../errors.js';
import { requireCpuModel, requireName } from '../validate.js';
import type { RestoreMaps } from './types.js';

export const MAP_KINDS = ['net', 'store', 'cpu'] as const;
export type MapKind = (typeof MAP_KINDS)[number];

const MAP_SYNTAX = "KIND:SOURCE=DEST with KIND 'net', 'store' or 'cpu' (e.g. net:prod=lab, store:fast=slow, cpu:Icelake-Server=Skylake-Server)";

export function emptyMaps(): RestoreMaps {
  return { net: {}, store: {}, cpu: {} };
}

/**
 * The destination a map gives `source`, or undefined. Own properties only: a network may well be called
 * 'constructor', and a map parsed from JSON is a plain object.
 */
export function mappedTo(maps: Readonly<Record<string, string>>, source: string): string | undefined {
  return Object.hasOwn(maps, source) ? maps[source] : undefined;
}

function isMapKind(v: string): v is MapKind {
  return (MAP_KINDS as readonly string[]).includes(v);
}

/** Parses `--map` arguments; a malformed one, a bad name, or one source mapped twice is an InvalidArgumentError. */
export function parseMaps(args: readonly string[]): RestoreMaps {
  const maps = emptyMaps();
  for (const arg of args) {
    const m = /^([a-z]+):([^=]*)=(.*)$/.exec(arg);
    const kind = m?.[1];
    const source = m?.[2];
    const dest = m?.[3];
    if (kind === undefined || source === undefined || dest === undefined || !isMapKind(kind)) {
      throw new InvalidArgumentError(`--map must be ${MAP_SYNTAX} (got ${JSON.stringify(arg)})`);
    }
    const check = kind === 'cpu' ? requireCpuModel : requireName;
    const what = kind === 'net' ? 'network' : kind === 'store' ? 'datastore' : 'CPU model';
    check(`--map ${arg}: the source ${what}`, source);
    check(`--map ${arg}: the destination ${what}`, dest);
    const table = maps[kind];
    const before = mappedTo(table, source);
    if (before !== undefined) {
      throw new InvalidArgumentError(`--map ${kind}:${source} is given twice (to '${before}' and to '${dest}'); map each source once`);
    }
    table[source] = dest;
  }
  return maps;
}

/** The maps as `--map` arguments (net, then store, then cpu; each in the order given): parseMaps's inverse. */
export function mapsToStrings(maps: RestoreMaps): string[] {
  return MAP_KINDS.flatMap((kind) => Object.entries(maps[kind]).map(([s, d]) => `${kind}:${s}=${d}`));
}
