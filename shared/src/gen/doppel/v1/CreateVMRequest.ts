// Original file: proto/doppel/v1/coordinator.proto

import type { Workload as _doppel_v1_Workload, Workload__Output as _doppel_v1_Workload__Output } from '../../doppel/v1/Workload.js';

export interface CreateVMRequest {
  'name'?: (string);
  /**
   * empty: the coordinator picks a host with room
   */
  'host'?: (string);
  'memoryMib'?: (number);
  'vcpus'?: (number);
  'workload'?: (_doppel_v1_Workload | null);
}

export interface CreateVMRequest__Output {
  'name': (string);
  /**
   * empty: the coordinator picks a host with room
   */
  'host': (string);
  'memoryMib': (number);
  'vcpus': (number);
  'workload': (_doppel_v1_Workload__Output | null);
}
