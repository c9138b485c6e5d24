// Original file: proto/doppel/v1/coordinator.proto

import type { ClonePlan as _doppel_v1_ClonePlan, ClonePlan__Output as _doppel_v1_ClonePlan__Output } from '../../doppel/v1/ClonePlan.js';
import type { CloneStats as _doppel_v1_CloneStats, CloneStats__Output as _doppel_v1_CloneStats__Output } from '../../doppel/v1/CloneStats.js';
import type { BackupJob as _doppel_v1_BackupJob, BackupJob__Output as _doppel_v1_BackupJob__Output } from '../../doppel/v1/BackupJob.js';
import type { RestoreJob as _doppel_v1_RestoreJob, RestoreJob__Output as _doppel_v1_RestoreJob__Output } from '../../doppel/v1/RestoreJob.js';
import type { HotCloneStats as _doppel_v1_HotCloneStats, HotCloneStats__Output as _doppel_v1_HotCloneStats__Output } from '../../doppel/v1/HotCloneStats.js';

export interface Job {
  'id'?: (string);
  /**
   * clone | hot-clone | backup | restore
   */
  'kind'?: (string);
  /**
   * pending | running | completed | failed
   */
  'state'?: (string);
  'vm'?: (string);
  'createdAt'?: (string);
  'updatedAt'?: (string);
  'plan'?: (_doppel_v1_ClonePlan | null);
  'stats'?: (_doppel_v1_CloneStats | null);
  'error'?: (string);
  'errorName'?: (string);
  'currentRound'?: (number);
  'lastRoundPages'?: (number);
  /**
   * kind backup
   */
  'backup'?: (_doppel_v1_BackupJob | null);
  /**
   * kind restore
   */
  'restore'?: (_doppel_v1_RestoreJob | null);
  /**
   * what the job is doing now, e.g. pre-copy | disk-copy | snapshot | upload | commit
   */
  'phase'?: (string);
  /**
   * 0..1 within the phase, when known
   */
  'progress'?: (number | string);
  /**
   * kind hot-clone, when completed
   */
  'hot'?: (_doppel_v1_HotCloneStats | null);
}

export interface Job__Output {
  'id': (string);
  /**
   * clone | hot-clone | backup | restore
   */
  'kind': (string);
  /**
   * pending | running | completed | failed
   */
  'state': (string);
  'vm': (string);
  'createdAt': (string);
  'updatedAt': (string);
  'plan': (_doppel_v1_ClonePlan__Output | null);
  'stats': (_doppel_v1_CloneStats__Output | null);
  'error': (string);
  'errorName': (string);
  'currentRound': (number);
  'lastRoundPages': (number);
  /**
   * kind backup
   */
  'backup': (_doppel_v1_BackupJob__Output | null);
  /**
   * kind restore
   */
  'restore': (_doppel_v1_RestoreJob__Output | null);
  /**
   * what the job is doing now, e.g. pre-copy | disk-copy | snapshot | upload | commit
   */
  'phase': (string);
  /**
   * 0..1 within the phase, when known
   */
  'progress': (number);
  /**
   * kind hot-clone, when completed
   */
  'hot': (_doppel_v1_HotCloneStats__Output | null);
}
