// Original file: proto/doppel/v1/repository.proto

import type { BadChunk as _doppel_v1_BadChunk, BadChunk__Output as _doppel_v1_BadChunk__Output } from '../../doppel/v1/BadChunk.js';
import type { Long } from '@grpc/proto-loader';

export interface VerifyProgress {
  'chunksChecked'?: (number | string | Long);
  /**
   * Distinct non-zero chunks the backup references.
   */
  'chunksTotal'?: (number | string | Long);
  /**
   * Problems found since the previous message.
   */
  'bad'?: (_doppel_v1_BadChunk)[];
  'done'?: (boolean);
}

export interface VerifyProgress__Output {
  'chunksChecked': (number);
  /**
   * Distinct non-zero chunks the backup references.
   */
  'chunksTotal': (number);
  /**
   * Problems found since the previous message.
   */
  'bad': (_doppel_v1_BadChunk__Output)[];
  'done': (boolean);
}
