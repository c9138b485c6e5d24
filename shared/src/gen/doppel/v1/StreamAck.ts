// Original file: proto/doppel/v1/dataplane.proto

import type { StreamSummary as _doppel_v1_StreamSummary, StreamSummary__Output as _doppel_v1_StreamSummary__Output } from '../../doppel/v1/StreamSummary.js';
import type { Long } from '@grpc/proto-loader';

export interface StreamAck {
  /**
   * The last round the target has applied completely.
   */
  'round'?: (number);
  'pagesApplied'?: (number | string | Long);
  /**
   * Set on the last message, after the source half-closed: the clone is complete.
   */
  'summary'?: (_doppel_v1_StreamSummary | null);
}

export interface StreamAck__Output {
  /**
   * The last round the target has applied completely.
   */
  'round': (number);
  'pagesApplied': (number);
  /**
   * Set on the last message, after the source half-closed: the clone is complete.
   */
  'summary': (_doppel_v1_StreamSummary__Output | null);
}
