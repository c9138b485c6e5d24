/**
 * The on-disk record of a VM's disk chains (`disks.json` in the VM's directory).
 * Whichever thread owns the disks at the time writes it (the worker at the end
 * of a merge, the driver otherwise), always by rename, so a crash leaves either
 * the old chain or the new one, and both read every block correctly.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One disk's chain: datastore layer ids, bottom first; the bottom `shared` ones are immutable bases. */
export interface ChainRecord {
  layers: string[];
  shared: number;
}

export const CHAIN_RECORD_FILE = 'disks.json';

/**
 * Writes JSON by rename. No fsync: the simulated crash is a process dying, which keeps the page cache; a real
 * driver would fsync the file and its directory.
 */
export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(value, null, 1));
  renameSync(tmp, path);
}

export function writeChainRecord(vmDir: string, chains: ChainRecord[]): void {
  writeJsonAtomic(join(vmDir, CHAIN_RECORD_FILE), { disks: chains });
}

export function readChainRecord(vmDir: string): ChainRecord[] {
  const raw = JSON.parse(readFileSync(join(vmDir, CHAIN_RECORD_FILE), 'utf8')) as { disks?: unknown };
  if (!Array.isArray(raw.disks)) throw new Error(`${CHAIN_RECORD_FILE} has no disks`);
  return raw.disks.map((d: unknown, i) => {
    const r = d as Partial<ChainRecord>;
    if (!Array.isArray(r.layers) || r.layers.length === 0 || !r.layers.every((l) => typeof l === 'string')) {
      throw new Error(`${CHAIN_RECORD_FILE}: disk ${i} has no layers`);
    }
    const shared = typeof r.shared === 'number' && Number.isInteger(r.shared) ? r.shared : 0;
    if (shared < 0 || shared >= r.layers.length) throw new Error(`${CHAIN_RECORD_FILE}: disk ${i} has a bad shared count`);
    return { layers: r.layers, shared };
  });
}
