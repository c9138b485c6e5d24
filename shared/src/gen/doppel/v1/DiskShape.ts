// Original file: proto/doppel/v1/dataplane.proto

import type { Long } from '@grpc/proto-loader';

export interface DiskShape {
  'name'?: (string);
  'sizeBytes'?: (number | string | Long);
  'blockSize'?: (number);
}

export interface DiskShape__Output {
  'name': (string);
  'sizeBytes': (number);
  'blockSize': (number);
}
