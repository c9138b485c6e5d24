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
}
