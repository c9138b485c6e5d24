// Original file: proto/doppel/v1/repository.proto

import type { DiskIndex as _doppel_v1_DiskIndex, DiskIndex__Output as _doppel_v1_DiskIndex__Output } from '../../doppel/v1/DiskIndex.js';

export interface CommitBackupRequest {
  'backupId'?: (string);
  'disks'?: (_doppel_v1_DiskIndex)[];
  /**
   * Opaque to the repository (the caller's VM configuration and statistics); empty or JSON.
   */
  'metadataJson'?: (string);
}

export interface CommitBackupRequest__Output {
  'backupId': (string);
  'disks': (_doppel_v1_DiskIndex__Output)[];
  /**
   * Opaque to the repository (the caller's VM configuration and statistics); empty or JSON.
   */
  'metadataJson': (string);
}
