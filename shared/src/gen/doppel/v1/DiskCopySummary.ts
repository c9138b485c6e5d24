// Original file: proto/doppel/v1/dataplane.proto

import type { Long } from '@grpc/proto-loader';

export interface DiskCopySummary {
  'blocksWritten'?: (number | string | Long);
  'bytesRaw'?: (number | string | Long);
  'bytesWire'?: (number | string | Long);
  'linked'?: (boolean);
}

export interface DiskCopySummary__Output {
  'blocksWritten': (number);
  'bytesRaw': (number);
  'bytesWire': (number);
  'linked': (boolean);
}
