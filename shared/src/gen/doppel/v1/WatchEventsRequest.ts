// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface WatchEventsRequest {
  'startSeq'?: (number | string | Long);
  'follow'?: (boolean);
  /**
   * replay every stored event
   */
  'all'?: (boolean);
}

export interface WatchEventsRequest__Output {
  'startSeq': (number);
  'follow': (boolean);
  /**
   * replay every stored event
   */
  'all': (boolean);
}
