// Original file: proto/doppel/v1/coordinator.proto

import type { SnapshotDisk as _doppel_v1_SnapshotDisk, SnapshotDisk__Output as _doppel_v1_SnapshotDisk__Output } from '../../doppel/v1/SnapshotDisk.js';

export interface StorageSnapshot {
  'id'?: (string);
  'vm'?: (string);
  'vmName'?: (string);
  /**
   * kept on this host's storage
   */
  'host'?: (string);
  'timestamp'?: (string);
  /**
   * the linked metadata snapshot
   */
  'metadataId'?: (string);
  /**
   * pair | update
   */
  'kind'?: (string);
  'disks'?: (_doppel_v1_SnapshotDisk)[];
  'createdAt'?: (string);
  'createMs'?: (number | string);
}

export interface StorageSnapshot__Output {
  'id': (string);
  'vm': (string);
  'vmName': (string);
  /**
   * kept on this host's storage
   */
  'host': (string);
  'timestamp': (string);
  /**
   * the linked metadata snapshot
   */
  'metadataId': (string);
  /**
   * pair | update
   */
  'kind': (string);
  'disks': (_doppel_v1_SnapshotDisk__Output)[];
  'createdAt': (string);
  'createMs': (number);
}
