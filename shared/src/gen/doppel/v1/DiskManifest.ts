// Original file: proto/doppel/v1/repository.proto

import type { Long } from '@grpc/proto-loader';

export interface DiskManifest {
  'name'?: (string);
  'sizeBytes'?: (number | string | Long);
  'chunkSize'?: (number);
  'chunks'?: (number);
  'zeroChunks'?: (number);
  /**
   * SHA-256 (hex) of the disk's index file as stored.
   */
  'indexSha256'?: (string);
  /**
   * SHA-256 (hex) over the chunk digests in order, an all-zero chunk counting as
   * the SHA-256 of its zero bytes: equal hashes mean equal disk contents.
   */
  'contentHash'?: (string);
}

export interface DiskManifest__Output {
  'name': (string);
  'sizeBytes': (number);
  'chunkSize': (number);
  'chunks': (number);
  'zeroChunks': (number);
  /**
   * SHA-256 (hex) of the disk's index file as stored.
   */
  'indexSha256': (string);
  /**
   * SHA-256 (hex) over the chunk digests in order, an all-zero chunk counting as
   * the SHA-256 of its zero bytes: equal hashes mean equal disk contents.
   */
  'contentHash': (string);
}
