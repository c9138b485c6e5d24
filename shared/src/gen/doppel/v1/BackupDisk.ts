// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface BackupDisk {
  'name'?: (string);
  'sizeBytes'?: (number | string | Long);
  'chunkSize'?: (number);
  'chunks'?: (number);
  'zeroChunks'?: (number);
  /**
   * SHA-256 over the chunk digests (see docs/decisions.md)
   */
  'contentHash'?: (string);
}

export interface BackupDisk__Output {
  'name': (string);
  'sizeBytes': (number);
  'chunkSize': (number);
  'chunks': (number);
  'zeroChunks': (number);
  /**
   * SHA-256 over the chunk digests (see docs/decisions.md)
   */
  'contentHash': (string);
}
