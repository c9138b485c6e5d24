// Original file: proto/doppel/v1/dataplane.proto

import type { DiskShape as _doppel_v1_DiskShape, DiskShape__Output as _doppel_v1_DiskShape__Output } from '../../doppel/v1/DiskShape.js';
import type { LayerChain as _doppel_v1_LayerChain, LayerChain__Output as _doppel_v1_LayerChain__Output } from '../../doppel/v1/LayerChain.js';

export interface DiskCopyOpen {
  'jobId'?: (string);
  'targetVmId'?: (string);
  'disks'?: (_doppel_v1_DiskShape)[];
  /**
   * Shared datastore: per disk, the frozen layer chain to overlay; no blocks follow.
   */
  'linked'?: (_doppel_v1_LayerChain)[];
}

export interface DiskCopyOpen__Output {
  'jobId': (string);
  'targetVmId': (string);
  'disks': (_doppel_v1_DiskShape__Output)[];
  /**
   * Shared datastore: per disk, the frozen layer chain to overlay; no blocks follow.
   */
  'linked': (_doppel_v1_LayerChain__Output)[];
}
