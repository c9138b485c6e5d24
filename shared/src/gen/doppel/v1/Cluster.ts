// Original file: proto/doppel/v1/coordinator.proto

import type { ClusterHost as _doppel_v1_ClusterHost, ClusterHost__Output as _doppel_v1_ClusterHost__Output } from '../../doppel/v1/ClusterHost.js';
import type { ClusterNetwork as _doppel_v1_ClusterNetwork, ClusterNetwork__Output as _doppel_v1_ClusterNetwork__Output } from '../../doppel/v1/ClusterNetwork.js';
import type { ClusterDatastore as _doppel_v1_ClusterDatastore, ClusterDatastore__Output as _doppel_v1_ClusterDatastore__Output } from '../../doppel/v1/ClusterDatastore.js';
import type { Long } from '@grpc/proto-loader';

export interface Cluster {
  'name'?: (string);
  'hosts'?: (_doppel_v1_ClusterHost)[];
  'networks'?: (_doppel_v1_ClusterNetwork)[];
  'datastores'?: (_doppel_v1_ClusterDatastore)[];
  /**
   * the first is the default of new VMs
   */
  'cpuModels'?: (string)[];
  /**
   * 0: only the hosts' capacity
   */
  'maxVmMemoryMib'?: (number | string | Long);
  /**
   * false: derived from the agents that name it
   */
  'registered'?: (boolean);
  'registeredAt'?: (string);
}

export interface Cluster__Output {
  'name': (string);
  'hosts': (_doppel_v1_ClusterHost__Output)[];
  'networks': (_doppel_v1_ClusterNetwork__Output)[];
  'datastores': (_doppel_v1_ClusterDatastore__Output)[];
  /**
   * the first is the default of new VMs
   */
  'cpuModels': (string)[];
  /**
   * 0: only the hosts' capacity
   */
  'maxVmMemoryMib': (number);
  /**
   * false: derived from the agents that name it
   */
  'registered': (boolean);
  'registeredAt': (string);
}
