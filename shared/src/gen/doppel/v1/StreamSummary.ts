// Original file: proto/doppel/v1/dataplane.proto

import type { Long } from '@grpc/proto-loader';

export interface StreamSummary {
  'pagesApplied'?: (number | string | Long);
  'bytesRaw'?: (number | string | Long);
  'bytesWire'?: (number | string | Long);
  'rounds'?: (number);
  'stateApplied'?: (boolean);
}

export interface StreamSummary__Output {
  'pagesApplied': (number);
  'bytesRaw': (number);
  'bytesWire': (number);
  'rounds': (number);
  'stateApplied': (boolean);
}
