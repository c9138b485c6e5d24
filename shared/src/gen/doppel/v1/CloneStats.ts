// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface CloneStats {
  'rounds'?: (number);
  'pagesPerRound'?: (number)[];
  'bytesRaw'?: (number | string | Long);
  'bytesWire'?: (number | string | Long);
  'downtimeMs'?: (number | string);
  'totalMs'?: (number | string);
  'sourceHash'?: (string);
  'cloneHash'?: (string);
  'verifyMs'?: (number | string);
  'converged'?: (boolean);
  'stopReason'?: (string);
  'finalPages'?: (number);
  'round0BytesPerS'?: (number | string);
  /**
   * disk blocks copied to the clone (0 when linked)
   */
  'diskBlocks'?: (number | string | Long);
  'diskBytesRaw'?: (number | string | Long);
  'diskBytesWire'?: (number | string | Long);
  'diskCopyMs'?: (number | string);
  /**
   * the clone overlays the source's frozen disk on a shared datastore
   */
  'diskLinked'?: (boolean);
}

export interface CloneStats__Output {
  'rounds': (number);
  'pagesPerRound': (number)[];
  'bytesRaw': (number);
  'bytesWire': (number);
  'downtimeMs': (number);
  'totalMs': (number);
  'sourceHash': (string);
  'cloneHash': (string);
  'verifyMs': (number);
  'converged': (boolean);
  'stopReason': (string);
  'finalPages': (number);
  'round0BytesPerS': (number);
  /**
   * disk blocks copied to the clone (0 when linked)
   */
  'diskBlocks': (number);
  'diskBytesRaw': (number);
  'diskBytesWire': (number);
  'diskCopyMs': (number);
  /**
   * the clone overlays the source's frozen disk on a shared datastore
   */
  'diskLinked': (boolean);
}
