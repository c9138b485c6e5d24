// Original file: proto/doppel/v1/dataplane.proto

import type { MigrationOpen as _doppel_v1_MigrationOpen, MigrationOpen__Output as _doppel_v1_MigrationOpen__Output } from '../../doppel/v1/MigrationOpen.js';

export interface MigrationFrame {
  /**
   * always first
   */
  'open'?: (_doppel_v1_MigrationOpen | null);
  /**
   * one relay frame, as migration-frames.ts encodes it
   */
  'data'?: (Buffer | Uint8Array | string);
  'kind'?: "open"|"data";
}

export interface MigrationFrame__Output {
  /**
   * always first
   */
  'open'?: (_doppel_v1_MigrationOpen__Output | null);
  /**
   * one relay frame, as migration-frames.ts encodes it
   */
  'data'?: (Buffer);
  'kind'?: "open"|"data";
}
