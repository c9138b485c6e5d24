// Original file: proto/doppel/v1/coordinator.proto

import type { Cluster as _doppel_v1_Cluster, Cluster__Output as _doppel_v1_Cluster__Output } from '../../doppel/v1/Cluster.js';

export interface ListClustersResponse {
  'clusters'?: (_doppel_v1_Cluster)[];
}

export interface ListClustersResponse__Output {
  'clusters': (_doppel_v1_Cluster__Output)[];
}
