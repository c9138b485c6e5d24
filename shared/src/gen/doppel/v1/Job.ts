// Original file: proto/doppel/v1/coordinator.proto

import type { ClonePlan as _doppel_v1_ClonePlan, ClonePlan__Output as _doppel_v1_ClonePlan__Output } from '../../doppel/v1/ClonePlan.js';
import type { CloneStats as _doppel_v1_CloneStats, CloneStats__Output as _doppel_v1_CloneStats__Output } from '../../doppel/v1/CloneStats.js';

export interface Job {
  'id'?: (string);
  /**
   * clone
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
}

export interface Job__Output {
  'id': (string);
  /**
   * clone
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
}
