// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface ClusterHost {
  'name'?: (string);
  /**
   * up | down
   */
  'state'?: (string);
  'memoryMib'?: (number | string | Long);
  'freeMemoryMib'?: (number | string | Long);
  'datastorePath'?: (string);
  /**
   * the cluster's name for it ('' when the cluster lists none there)
   */
  'datastore'?: (string);
}

export interface ClusterHost__Output {
  'name': (string);
  /**
   * up | down
   */
  'state': (string);
  'memoryMib': (number);
  'freeMemoryMib': (number);
  'datastorePath': (string);
  /**
   * the cluster's name for it ('' when the cluster lists none there)
   */
  'datastore': (string);
}
