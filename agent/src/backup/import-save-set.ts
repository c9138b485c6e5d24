/**
 * A planned restore's import (seed 003): the destination host copies the save
 * set from the repository to its datastore (`imports/<host>.<job>/saveset.json`),
 * checks the copy, and makes the VM's configuration from it, changed by the
 * plan to fit this cluster. The disks then arrive from the repository into the
 * datastore the plan chose, which is this host's.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  FailedPreconditionError,
  InvalidArgumentError,
  RepositoryClient,
  applyPlan,
  openSaveSet,
  validateVmSpec,
  type RestoreStartArgs,
  type Transport,
  type VmSpec,
} from '../../../shared/src/mod.js';

export interface StagedImport {
  spec: VmSpec;
  /** Where the save set was copied (removed by `cleanup` once the restore has ended). */
  file: string;
  cleanup(): void;
}

export async function stageImport(args: RestoreStartArgs, deps: { transport: Transport; datastorePath: string; host: string }): Promise<StagedImport> {
  const plan = args.plan;
  if (!plan) throw new FailedPreconditionError('a planned import needs its plan');
  const here = path.resolve(deps.datastorePath);
  if (!plan.datastore || path.resolve(plan.datastore.path) !== here) {
    throw new FailedPreconditionError(`the plan puts the VM on datastore ${plan.datastore?.path ?? '(none)'}, but host '${deps.host}' mounts ${here}`);
  }
  const repo = new RepositoryClient(args.backup.repository, { callDeadlineMs: 15_000, transport: deps.transport });
  let metadataJson: string;
  let disks: { name: string; contentHash: string }[];
  try {
    const m = await repo.manifest(args.backup.id);
    metadataJson = m.metadataJson;
    disks = m.disks.map((d) => ({ name: d.name, contentHash: d.contentHash }));
  } finally {
    repo.close();
  }
  const expect = { backupId: args.backup.id, disks };
  // Checked as fetched, and again as copied: the import reads only the copy.
  const saveSet = openSaveSet(metadataJson, expect);
  if (plan.networks.length !== saveSet.config.nics.length) {
    throw new InvalidArgumentError(`the plan names ${plan.networks.length} networks for the VM's ${saveSet.config.nics.length} NICs`);
  }
  const dir = path.join(here, 'imports', `${deps.host}.${args.jobId}`);
  const file = path.join(dir, 'saveset.json');
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    mkdirSync(dir, { recursive: true });
    writeFileSync(file, JSON.stringify({ saveSet }, null, 2), { flush: true });
    const copy = openSaveSet(readFileSync(file, 'utf8'), expect);
    const changed = applyPlan(copy.config, plan);
    const spec = validateVmSpec({ ...changed, name: args.name, identity: args.identity });
    return { spec, file, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/**
 * Removes the save-set copies this host left in `imports/` (`<host>.<job>`) when it stopped in the middle of a
 * restore; other hosts' copies on a shared datastore are theirs. Returns how many went.
 */
export function sweepImports(datastorePath: string, host: string): number {
  const dir = path.join(datastorePath, 'imports');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  const mine = names.filter((n) => n.startsWith(`${host}.`));
  for (const n of mine) rmSync(path.join(dir, n), { recursive: true, force: true });
  return mine.length;
}
