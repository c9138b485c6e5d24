// Original file: proto/doppel/v1/repository.proto

import type { BackupManifest as _doppel_v1_BackupManifest, BackupManifest__Output as _doppel_v1_BackupManifest__Output } from '../../doppel/v1/BackupManifest.js';

export interface ListBackupsReply {
  /**
   * Oldest first.
   */
  'backups'?: (_doppel_v1_BackupManifest)[];
}

export interface ListBackupsReply__Output {
  /**
   * Oldest first.
   */
  'backups': (_doppel_v1_BackupManifest__Output)[];
}
