// Original file: proto/doppel/v1/coordinator.proto

import type { VMStorageLayer as _doppel_v1_VMStorageLayer, VMStorageLayer__Output as _doppel_v1_VMStorageLayer__Output } from '../../doppel/v1/VMStorageLayer.js';
import type { Long } from '@grpc/proto-loader';

export interface VMStorage {
  /**
   * in layers only this VM uses (its overlays)
   */
  'ownBytes'?: (number | string | Long);
  /**
   * in shared bases it reads
   */
  'sharedBytes'?: (number | string | Long);
  'layers'?: (_doppel_v1_VMStorageLayer)[];
}

export interface VMStorage__Output {
  /**
   * in layers only this VM uses (its overlays)
   */
  'ownBytes': (number);
  /**
   * in shared bases it reads
   */
  'sharedBytes': (number);
  'layers': (_doppel_v1_VMStorageLayer__Output)[];
}
