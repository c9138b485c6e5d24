// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface Capacity {
  'memoryMib'?: (number | string | Long);
  'cpus'?: (number);
  'maxVms'?: (number);
}

export interface Capacity__Output {
  'memoryMib': (number);
  'cpus': (number);
  'maxVms': (number);
}
