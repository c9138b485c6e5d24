/**
 * The save set of a backup (seed 003): at the start of the backup, the VM's
 * configuration is read through the driver's export interface (nothing is
 * exported) and put beside its cluster's configuration in the manifest's
 * metadata; at the commit, once the disks' content hashes are known, it is
 * sealed with a digest. A clone-mode backup is committed by the clone's host,
 * which seals the draft it was handed.
 */
import {
  contentHashOf,
  sealSaveSet,
  type BackupStartArgs,
  type RepoDiskIndex,
  type SaveSet,
} from '../../../shared/src/mod.js';
import type { DriverVm, HypervisorDriver } from '../drivers/driver.js';

/** A save set before its disks are known: the backup's metadata carries it to the commit. */
export type SaveSetDraft = Omit<SaveSet, 'format' | 'digest' | 'disks'>;

/** Reads the VM's and its cluster's configuration; undefined when the coordinator sent no cluster (an older one). */
export function saveSetDraft(driver: HypervisorDriver, vm: DriverVm, args: BackupStartArgs, host: string): SaveSetDraft | undefined {
  if (!args.cluster) return undefined;
  return {
    backupId: args.backupId,
    vm: vm.id,
    exportedAt: new Date().toISOString(),
    exportedBy: { host, driver: driver.name },
    config: driver.describeExport(vm.id, args.cluster.config),
    cluster: args.cluster.config,
    datastores: args.cluster.datastores,
  };
}

/**
 * The metadata to commit: a draft save set in it gets the disks' content hashes (as the repository will record
 * them in the manifest) and its digest. Metadata without one is returned as it is.
 */
export function sealMetadata(metadataJson: string, indexes: readonly RepoDiskIndex[]): { json: string; digest: string } {
  if (!metadataJson) return { json: metadataJson, digest: '' };
  const meta = JSON.parse(metadataJson) as { saveSet?: SaveSetDraft };
  if (!meta.saveSet) return { json: metadataJson, digest: '' };
  const sealed = sealSaveSet({
    ...meta.saveSet,
    disks: indexes.map((d) => ({ name: d.disk, contentHash: contentHashOf(d.digests, d.sizeBytes, d.chunkSize) })),
  });
  return { json: JSON.stringify({ ...meta, saveSet: sealed }), digest: sealed.digest };
}
