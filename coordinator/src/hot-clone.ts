/**
 * Planning a hot clone (seed 004): the checks made before anything is created
 * or frozen. The clone shares the source's frozen disks through its own overlay,
 * so the target must see the source's datastore, unless the operator asks for a
 * full copy of the disks.
 */
import { FailedPreconditionError, InvalidArgumentError, type HostRecord, type VmInfo } from '../../shared/src/mod.js';

/** The default bound on the source's write buffer while its memory is frozen (about a million guest writes). */
export const HOT_BUFFER_BYTES = 64 * 1024 * 1024;

export interface HotClonePlan {
  /** The clone overlays the frozen disks on the shared datastore; false: they are copied in full. */
  linked: boolean;
}

export function planHotClone(vm: VmInfo, source: HostRecord, target: HostRecord, copyDisks: boolean): HotClonePlan {
  if (vm.state !== 'running') {
    throw new FailedPreconditionError(
      `vm '${vm.name}' is ${vm.state}: a hot clone freezes a running VM without stopping it (run it first, or make a pre-copy clone without --hot)`,
    );
  }
  if (vm.networkIsolated) throw new InvalidArgumentError(`vm '${vm.name}' is a backup clone with its network cut off; clone its source instead`);
  const shared = source.datastore !== '' && source.datastore === target.datastore;
  if (!shared && !copyDisks) {
    throw new FailedPreconditionError(
      `target host '${target.name}' does not see datastore '${source.datastore || '(none)'}' of host '${source.name}', where vm '${vm.name}' has its disks ` +
        `(it has '${target.datastore || '(none)'}'): a hot clone shares the frozen base disk through an overlay on the shared datastore. ` +
        `Pick a host on the same datastore (see 'doppel hosts'), or pass --copy-disks to copy the disks in full`,
    );
  }
  return { linked: shared && !copyDisks };
}
