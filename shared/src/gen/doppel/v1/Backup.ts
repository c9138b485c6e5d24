// Original file: proto/doppel/v1/coordinator.proto

import type { BackupDisk as _doppel_v1_BackupDisk, BackupDisk__Output as _doppel_v1_BackupDisk__Output } from '../../doppel/v1/BackupDisk.js';
import type { BackupStats as _doppel_v1_BackupStats, BackupStats__Output as _doppel_v1_BackupStats__Output } from '../../doppel/v1/BackupStats.js';
import type { VM as _doppel_v1_VM, VM__Output as _doppel_v1_VM__Output } from '../../doppel/v1/VM.js';
import type { BypassBackup as _doppel_v1_BypassBackup, BypassBackup__Output as _doppel_v1_BypassBackup__Output } from '../../doppel/v1/BypassBackup.js';

export interface Backup {
  'id'?: (string);
  /**
   * the source VM's id
   */
  'vm'?: (string);
  'vmName'?: (string);
  /**
   * the source VM's host
   */
  'host'?: (string);
  'createdAt'?: (string);
  /**
   * clone | direct | bypass
   */
  'mode'?: (string);
  /**
   * full | incremental
   */
  'kind'?: (string);
  /**
   * incremental: the backup it builds on
   */
  'baseId'?: (string);
  /**
   * full: why (no previous backup, change tracking lost, not asked...)
   */
  'fullReason'?: (string);
  'repository'?: (string);
  'disks'?: (_doppel_v1_BackupDisk)[];
  'stats'?: (_doppel_v1_BackupStats | null);
  /**
   * the configuration a restore recreates
   */
  'spec'?: (_doppel_v1_VM | null);
  /**
   * mode bypass: how the two parts agree on t1
   */
  'bypass'?: (_doppel_v1_BypassBackup | null);
  /**
   * the VM's cluster when it was backed up
   */
  'cluster'?: (string);
  /**
   * SHA-256 of the save set in the manifest (seed 003); '' for a backup without one
   */
  'saveSetDigest'?: (string);
}

export interface Backup__Output {
  'id': (string);
  /**
   * the source VM's id
   */
  'vm': (string);
  'vmName': (string);
  /**
   * the source VM's host
   */
  'host': (string);
  'createdAt': (string);
  /**
   * clone | direct | bypass
   */
  'mode': (string);
  /**
   * full | incremental
   */
  'kind': (string);
  /**
   * incremental: the backup it builds on
   */
  'baseId': (string);
  /**
   * full: why (no previous backup, change tracking lost, not asked...)
   */
  'fullReason': (string);
  'repository': (string);
  'disks': (_doppel_v1_BackupDisk__Output)[];
  'stats': (_doppel_v1_BackupStats__Output | null);
  /**
   * the configuration a restore recreates
   */
  'spec': (_doppel_v1_VM__Output | null);
  /**
   * mode bypass: how the two parts agree on t1
   */
  'bypass': (_doppel_v1_BypassBackup__Output | null);
  /**
   * the VM's cluster when it was backed up
   */
  'cluster': (string);
  /**
   * SHA-256 of the save set in the manifest (seed 003); '' for a backup without one
   */
  'saveSetDigest': (string);
}
