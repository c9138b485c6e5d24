// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface CorruptChunk {
  'digest'?: (string);
  'reason'?: (string);
  'disk'?: (string);
  'offset'?: (number | string | Long);
}

export interface CorruptChunk__Output {
  'digest': (string);
  'reason': (string);
  'disk': (string);
  'offset': (number);
}
