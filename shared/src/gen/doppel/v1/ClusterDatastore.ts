// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface ClusterDatastore {
  'name'?: (string);
  'path'?: (string);
  /**
   * a quota; 0: the filesystem's free space
   */
  'capacityMib'?: (number | string | Long);
  /**
   * up hosts whose agent's datastore is this path
   */
  'mountedBy'?: (string)[];
  'freeMib'?: (number | string | Long);
  'usedMib'?: (number | string | Long);
}

export interface ClusterDatastore__Output {
  'name': (string);
  'path': (string);
  /**
   * a quota; 0: the filesystem's free space
   */
  'capacityMib': (number);
  /**
   * up hosts whose agent's datastore is this path
   */
  'mountedBy': (string)[];
  'freeMib': (number);
  'usedMib': (number);
}
