// Original file: proto/doppel/v1/coordinator.proto

import type { Backup as _doppel_v1_Backup, Backup__Output as _doppel_v1_Backup__Output } from '../../doppel/v1/Backup.js';

export interface BackupJob {
  'backupId'?: (string);
  /**
   * clone | direct
   */
  'mode'?: (string);
  /**
   * asked for
   */
  'incremental'?: (boolean);
  /**
   * the base offered for an incremental ('' if none)
   */
  'baseBackupId'?: (string);
  'keepClone'?: (boolean);
  'repository'?: (string);
  /**
   * set when completed
   */
  'result'?: (_doppel_v1_Backup | null);
}

export interface BackupJob__Output {
  'backupId': (string);
  /**
   * clone | direct
   */
  'mode': (string);
  /**
   * asked for
   */
  'incremental': (boolean);
  /**
   * the base offered for an incremental ('' if none)
   */
  'baseBackupId': (string);
  'keepClone': (boolean);
  'repository': (string);
  /**
   * set when completed
   */
  'result': (_doppel_v1_Backup__Output | null);
}
