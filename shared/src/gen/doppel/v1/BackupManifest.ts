// Original file: proto/doppel/v1/repository.proto

import type { DiskManifest as _doppel_v1_DiskManifest, DiskManifest__Output as _doppel_v1_DiskManifest__Output } from '../../doppel/v1/DiskManifest.js';

export interface BackupManifest {
  'backupId'?: (string);
  /**
   * ISO 8601, UTC.
   */
  'createdAt'?: (string);
  'disks'?: (_doppel_v1_DiskManifest)[];
  /**
   * Empty in ListBackups replies unless with_metadata was asked for.
   */
  'metadataJson'?: (string);
}

export interface BackupManifest__Output {
  'backupId': (string);
  /**
   * ISO 8601, UTC.
   */
  'createdAt': (string);
  'disks': (_doppel_v1_DiskManifest__Output)[];
  /**
   * Empty in ListBackups replies unless with_metadata was asked for.
   */
  'metadataJson': (string);
}
