// Original file: proto/doppel/v1/dataplane.proto

import type { DiskCopyOpen as _doppel_v1_DiskCopyOpen, DiskCopyOpen__Output as _doppel_v1_DiskCopyOpen__Output } from '../../doppel/v1/DiskCopyOpen.js';
import type { DiskBlocks as _doppel_v1_DiskBlocks, DiskBlocks__Output as _doppel_v1_DiskBlocks__Output } from '../../doppel/v1/DiskBlocks.js';
import type { DiskChanges as _doppel_v1_DiskChanges, DiskChanges__Output as _doppel_v1_DiskChanges__Output } from '../../doppel/v1/DiskChanges.js';

export interface DiskFrame {
  /**
   * always first
   */
  'open'?: (_doppel_v1_DiskCopyOpen | null);
  'blocks'?: (_doppel_v1_DiskBlocks | null);
  'changes'?: (_doppel_v1_DiskChanges | null);
  'kind'?: "open"|"blocks"|"changes";
}

export interface DiskFrame__Output {
  /**
   * always first
   */
  'open'?: (_doppel_v1_DiskCopyOpen__Output | null);
  'blocks'?: (_doppel_v1_DiskBlocks__Output | null);
  'changes'?: (_doppel_v1_DiskChanges__Output | null);
  'kind'?: "open"|"blocks"|"changes";
}
