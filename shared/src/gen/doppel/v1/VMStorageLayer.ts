// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface VMStorageLayer {
  /**
   * index in the VM's disks
   */
  'disk'?: (number);
  /**
   * layer id on the datastore
   */
  'id'?: (string);
  /**
   * data it holds
   */
  'bytes'?: (number | string | Long);
  /**
   * a base another VM or a snapshot also holds
   */
  'shared'?: (boolean);
}

export interface VMStorageLayer__Output {
  /**
   * index in the VM's disks
   */
  'disk': (number);
  /**
   * layer id on the datastore
   */
  'id': (string);
  /**
   * data it holds
   */
  'bytes': (number);
  /**
   * a base another VM or a snapshot also holds
   */
  'shared': (boolean);
}
