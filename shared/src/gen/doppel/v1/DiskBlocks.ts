// Original file: proto/doppel/v1/dataplane.proto

import type { PageBatch as _doppel_v1_PageBatch, PageBatch__Output as _doppel_v1_PageBatch__Output } from '../../doppel/v1/PageBatch.js';

/**
 * Blocks of one disk, framed like pages: zero blocks as indices, the rest LZ4 (or raw), with a CRC.
 */
export interface DiskBlocks {
  'disk'?: (number);
  'batch'?: (_doppel_v1_PageBatch | null);
}

/**
 * Blocks of one disk, framed like pages: zero blocks as indices, the rest LZ4 (or raw), with a CRC.
 */
export interface DiskBlocks__Output {
  'disk': (number);
  'batch': (_doppel_v1_PageBatch__Output | null);
}
