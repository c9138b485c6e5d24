// Original file: proto/doppel/v1/dataplane.proto

import type { MigrationSummary as _doppel_v1_MigrationSummary, MigrationSummary__Output as _doppel_v1_MigrationSummary__Output } from '../../doppel/v1/MigrationSummary.js';
import type { Long } from '@grpc/proto-loader';

export interface MigrationAck {
  /**
   * Frames handed to the clone's QEMU so far.
   */
  'frames'?: (number | string | Long);
  /**
   * Set on the last message: the clone's QEMU took the whole migration.
   */
  'summary'?: (_doppel_v1_MigrationSummary | null);
}

export interface MigrationAck__Output {
  /**
   * Frames handed to the clone's QEMU so far.
   */
  'frames': (number);
  /**
   * Set on the last message: the clone's QEMU took the whole migration.
   */
  'summary': (_doppel_v1_MigrationSummary__Output | null);
}
