/**
 * Restoring a bypass-mode backup's bypass volumes (seed 001): each goes back
 * onto the storage array, into the restored VM's own volume, every chunk checked
 * against its digest; then the volume is read back from the array and hashed.
 * Also the consistency check: the token on the restored image disk and on the
 * restored bypass volume, read before the VM first runs.
 */
import {
  ContentHasher,
  DataCorruptionError,
  RepositoryClient,
  TOKEN_BYTES,
  chunkLength,
  decodeToken,
  restoreDisk,
  type BackupRecord,
  type Transport,
} from '../../../shared/src/mod.js';
import type { DriverVm } from '../drivers/driver.js';
import type { ArrayApi } from './array-view.js';

export async function restoreBypassVolumes(
  vm: DriverVm,
  backup: BackupRecord,
  array: ArrayApi,
  transport: Transport,
): Promise<{ bytesWritten: number; hashes: string[] }> {
  const repo = new RepositoryClient(backup.repository, { transport });
  try {
    let bytesWritten = 0;
    const hashes: string[] = [];
    for (const v of backup.bypass?.volumes ?? []) {
      const target = vm.bypassVolumes().find((b) => b.name === v.name);
      const disk = backup.disks.find((d) => d.name === v.disk);
      if (!target || !disk) throw new DataCorruptionError(`backup ${backup.id}: bypass volume '${v.name}' has no disk '${v.disk}' or the VM has no such volume`);
      if (target.sizeBytes !== disk.sizeBytes) throw new DataCorruptionError(`bypass volume '${v.name}': ${target.sizeBytes} bytes on the VM, ${disk.sizeBytes} in the backup`);
      const index = await repo.index(backup.id, v.disk);
      // The restorer's buffers are shared memory, which an HTTP body cannot be: a copy goes.
      const r = await restoreDisk(repo, index, (i, data) => array.write(target.volume, i * index.chunkSize, Buffer.from(data)).then(() => undefined), {
        expectContentHash: disk.contentHash,
      });
      bytesWritten += r.bytesWritten;
      // Read back from the array: the hash is of what the guest will see.
      const hasher = new ContentHasher(disk.sizeBytes, disk.chunkSize);
      for (let i = 0; i < hasher.chunks; i++) {
        hasher.addData(await array.read(target.volume, i * disk.chunkSize, chunkLength(i, disk.sizeBytes, disk.chunkSize)));
      }
      const h = hasher.digest();
      if (h !== disk.contentHash) throw new DataCorruptionError(`restored bypass volume '${v.name}' hashes to ${h.slice(0, 16)}…, the backup says ${disk.contentHash.slice(0, 16)}…`);
      hashes.push(h);
    }
    return { bytesWritten, hashes };
  } finally {
    repo.close();
  }
}

/** The consistency tokens of a VM that is not running: on the last 4 KiB of its first disk and the start of its first bypass volume. */
export async function readTokens(vm: DriverVm, array: ArrayApi): Promise<{ image: number; bypass: number }> {
  const view = vm.liveDiskView(0);
  const block = Buffer.alloc(view.blockSize);
  await view.read(view.blockCount - 1, 1, block);
  const image = decodeToken(block.subarray(view.blockSize - TOKEN_BYTES));
  const vol = vm.bypassVolumes()[0];
  const bypass = vol ? decodeToken(await array.read(vol.volume, 0, TOKEN_BYTES)) : -1;
  return { image, bypass };
}
