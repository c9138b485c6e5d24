// Original file: proto/doppel/v1/coordinator.proto

import type { StorageSnapshot as _doppel_v1_StorageSnapshot, StorageSnapshot__Output as _doppel_v1_StorageSnapshot__Output } from '../../doppel/v1/StorageSnapshot.js';
import type { MetadataSnapshot as _doppel_v1_MetadataSnapshot, MetadataSnapshot__Output as _doppel_v1_MetadataSnapshot__Output } from '../../doppel/v1/MetadataSnapshot.js';

export interface RevertSnapshotResponse {
  'storage'?: (_doppel_v1_StorageSnapshot | null);
  'metadata'?: (_doppel_v1_MetadataSnapshot | null);
  /**
   * the VM's disks after the revert
   */
  'diskHashes'?: (string)[];
  /**
   * the storage snapshot's disks
   */
  'snapshotHashes'?: (string)[];
  'hashesMatch'?: (boolean);
  'runState'?: (string);
  'ms'?: (number | string);
}

export interface RevertSnapshotResponse__Output {
  'storage': (_doppel_v1_StorageSnapshot__Output | null);
  'metadata': (_doppel_v1_MetadataSnapshot__Output | null);
  /**
   * the VM's disks after the revert
   */
  'diskHashes': (string)[];
  /**
   * the storage snapshot's disks
   */
  'snapshotHashes': (string)[];
  'hashesMatch': (boolean);
  'runState': (string);
  'ms': (number);
}
