// Original file: proto/doppel/v1/coordinator.proto

import type { ClusterNetwork as _doppel_v1_ClusterNetwork, ClusterNetwork__Output as _doppel_v1_ClusterNetwork__Output } from '../../doppel/v1/ClusterNetwork.js';
import type { ClusterDatastore as _doppel_v1_ClusterDatastore, ClusterDatastore__Output as _doppel_v1_ClusterDatastore__Output } from '../../doppel/v1/ClusterDatastore.js';
import type { Long } from '@grpc/proto-loader';

export interface AddClusterRequest {
  'name'?: (string);
  'hosts'?: (string)[];
  'networks'?: (_doppel_v1_ClusterNetwork)[];
  /**
   * name, path, capacity_mib
   */
  'datastores'?: (_doppel_v1_ClusterDatastore)[];
  'cpuModels'?: (string)[];
  'maxVmMemoryMib'?: (number | string | Long);
  /**
   * replace a registered cluster of this name
   */
  'replace'?: (boolean);
}

export interface AddClusterRequest__Output {
  'name': (string);
  'hosts': (string)[];
  'networks': (_doppel_v1_ClusterNetwork__Output)[];
  /**
   * name, path, capacity_mib
   */
  'datastores': (_doppel_v1_ClusterDatastore__Output)[];
  'cpuModels': (string)[];
  'maxVmMemoryMib': (number);
  /**
   * replace a registered cluster of this name
   */
  'replace': (boolean);
}
