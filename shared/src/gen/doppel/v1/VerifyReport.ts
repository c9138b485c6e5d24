// Original file: proto/doppel/v1/coordinator.proto

import type { CorruptChunk as _doppel_v1_CorruptChunk, CorruptChunk__Output as _doppel_v1_CorruptChunk__Output } from '../../doppel/v1/CorruptChunk.js';

export interface VerifyReport {
  'chunksChecked'?: (number);
  'chunksTotal'?: (number);
  'bad'?: (_doppel_v1_CorruptChunk)[];
  'done'?: (boolean);
}

export interface VerifyReport__Output {
  'chunksChecked': (number);
  'chunksTotal': (number);
  'bad': (_doppel_v1_CorruptChunk__Output)[];
  'done': (boolean);
}
