/**
 * A simulated VM's configuration on disk (`vm.json` in its directory), so the
 * driver finds its VMs again after an agent restart. `complete` is false for a
 * VM still being filled (an incoming clone, a restore) until it first runs: a
 * load deletes such half-made VMs.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmSpec } from '../../../../shared/src/mod.js';
import { writeJsonAtomic } from './chain-record.js';

export const VM_RECORD_FILE = 'vm.json';

export interface VmRecord {
  id: string;
  spec: VmSpec;
  cloneOf: string;
  networkIsolated: boolean;
  complete: boolean;
}

export function writeVmRecord(vmDir: string, r: VmRecord): void {
  writeJsonAtomic(join(vmDir, VM_RECORD_FILE), r);
}

/** The record, or undefined when it is missing or unreadable (a VM whose creation never finished). */
export function readVmRecord(vmDir: string): VmRecord | undefined {
  try {
    const r = JSON.parse(readFileSync(join(vmDir, VM_RECORD_FILE), 'utf8')) as Partial<VmRecord>;
    if (typeof r.id !== 'string' || typeof r.spec !== 'object' || r.spec === null || !Array.isArray(r.spec.disks)) return undefined;
    return { id: r.id, spec: r.spec, cloneOf: r.cloneOf ?? '', networkIsolated: r.networkIsolated === true, complete: r.complete === true };
  } catch {
    return undefined;
  }
}
