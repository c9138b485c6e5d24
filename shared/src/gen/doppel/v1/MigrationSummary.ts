// Original file: proto/doppel/v1/dataplane.proto

import type { Long } from '@grpc/proto-loader';

export interface MigrationSummary {
  'frames'?: (number | string | Long);
  'bytesRaw'?: (number | string | Long);
  'bytesWire'?: (number | string | Long);
  /**
   * From the end of the stream to the clone's QEMU reporting the migration completed.
   */
  'landMs'?: (number | string);
}

export interface MigrationSummary__Output {
  'frames': (number);
  'bytesRaw': (number);
  'bytesWire': (number);
  /**
   * From the end of the stream to the clone's QEMU reporting the migration completed.
   */
  'landMs': (number);
}
