// Original file: proto/doppel/v1/coordinator.proto

import type { Workload as _doppel_v1_Workload, Workload__Output as _doppel_v1_Workload__Output } from '../../doppel/v1/Workload.js';
import type { Disk as _doppel_v1_Disk, Disk__Output as _doppel_v1_Disk__Output } from '../../doppel/v1/Disk.js';

export interface VM {
  'id'?: (string);
  'name'?: (string);
  'host'?: (string);
  /**
   * running | suspended
   */
  'state'?: (string);
  'memoryMib'?: (number);
  'vcpus'?: (number);
  'workload'?: (_doppel_v1_Workload | null);
  'cloneOf'?: (string);
  'disks'?: (_doppel_v1_Disk)[];
  'networkIsolated'?: (boolean);
}

export interface VM__Output {
  'id': (string);
  'name': (string);
  'host': (string);
  /**
   * running | suspended
   */
  'state': (string);
  'memoryMib': (number);
  'vcpus': (number);
  'workload': (_doppel_v1_Workload__Output | null);
  'cloneOf': (string);
  'disks': (_doppel_v1_Disk__Output)[];
  'networkIsolated': (boolean);
}
