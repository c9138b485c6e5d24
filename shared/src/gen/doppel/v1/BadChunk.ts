// Original file: proto/doppel/v1/repository.proto

import type { Long } from '@grpc/proto-loader';

export interface BadChunk {
  /**
   * Empty when the problem is an index rather than a chunk.
   */
  'digestHex'?: (string);
  'reason'?: (string);
  /**
   * The first place the backup references the chunk.
   */
  'disk'?: (string);
  'offset'?: (number | string | Long);
}

export interface BadChunk__Output {
  /**
   * Empty when the problem is an index rather than a chunk.
   */
  'digestHex': (string);
  'reason': (string);
  /**
   * The first place the backup references the chunk.
   */
  'disk': (string);
  'offset': (number);
}
