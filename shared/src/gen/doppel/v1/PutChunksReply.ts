// Original file: proto/doppel/v1/repository.proto

import type { Long } from '@grpc/proto-loader';

export interface PutChunksReply {
  'chunksStored'?: (number | string | Long);
  /**
   * Chunks the repository already held (sent anyway, e.g. by a concurrent upload).
   */
  'chunksExisting'?: (number | string | Long);
  /**
   * Payload bytes written for the stored chunks.
   */
  'bytesStored'?: (number | string | Long);
}

export interface PutChunksReply__Output {
  'chunksStored': (number);
  /**
   * Chunks the repository already held (sent anyway, e.g. by a concurrent upload).
   */
  'chunksExisting': (number);
  /**
   * Payload bytes written for the stored chunks.
   */
  'bytesStored': (number);
}
