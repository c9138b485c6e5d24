// Original file: proto/doppel/v1/repository.proto

import type { Long } from '@grpc/proto-loader';

export interface DiskIndex {
  'disk'?: (string);
  'sizeBytes'?: (number | string | Long);
  'chunkSize'?: (number);
  /**
   * One per chunk, in disk order; empty for an all-zero chunk.
   */
  'digests'?: (Buffer | Uint8Array | string)[];
}

export interface DiskIndex__Output {
  'disk': (string);
  'sizeBytes': (number);
  'chunkSize': (number);
  /**
   * One per chunk, in disk order; empty for an all-zero chunk.
   */
  'digests': (Buffer)[];
}
