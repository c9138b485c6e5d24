// Original file: proto/doppel/v1/dataplane.proto

import type { StreamOpen as _doppel_v1_StreamOpen, StreamOpen__Output as _doppel_v1_StreamOpen__Output } from '../../doppel/v1/StreamOpen.js';
import type { PageBatch as _doppel_v1_PageBatch, PageBatch__Output as _doppel_v1_PageBatch__Output } from '../../doppel/v1/PageBatch.js';
import type { RoundEnd as _doppel_v1_RoundEnd, RoundEnd__Output as _doppel_v1_RoundEnd__Output } from '../../doppel/v1/RoundEnd.js';
import type { MachineState as _doppel_v1_MachineState, MachineState__Output as _doppel_v1_MachineState__Output } from '../../doppel/v1/MachineState.js';

export interface PageFrame {
  /**
   * always first
   */
  'open'?: (_doppel_v1_StreamOpen | null);
  'batch'?: (_doppel_v1_PageBatch | null);
  'roundEnd'?: (_doppel_v1_RoundEnd | null);
  /**
   * sent once, in the suspended window
   */
  'state'?: (_doppel_v1_MachineState | null);
  'kind'?: "open"|"batch"|"roundEnd"|"state";
}

export interface PageFrame__Output {
  /**
   * always first
   */
  'open'?: (_doppel_v1_StreamOpen__Output | null);
  'batch'?: (_doppel_v1_PageBatch__Output | null);
  'roundEnd'?: (_doppel_v1_RoundEnd__Output | null);
  /**
   * sent once, in the suspended window
   */
  'state'?: (_doppel_v1_MachineState__Output | null);
  'kind'?: "open"|"batch"|"roundEnd"|"state";
}
