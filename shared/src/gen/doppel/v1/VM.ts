// Original file: proto/doppel/v1/coordinator.proto

import type { Workload as _doppel_v1_Workload, Workload__Output as _doppel_v1_Workload__Output } from '../../doppel/v1/Workload.js';
import type { Disk as _doppel_v1_Disk, Disk__Output as _doppel_v1_Disk__Output } from '../../doppel/v1/Disk.js';
import type { BypassVolume as _doppel_v1_BypassVolume, BypassVolume__Output as _doppel_v1_BypassVolume__Output } from '../../doppel/v1/BypassVolume.js';

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
  /**
   * Identity: a clone or a restore gets a new one; a backup keeps the source's.
   */
  'uuid'?: (string);
  /**
   * the NIC's MAC, xx:xx:xx:xx:xx:xx, unique in the fleet
   */
  'mac'?: (string);
  'hostname'?: (string);
  /**
   * as /etc/machine-id: 32 hex characters
   */
  'machineId'?: (string);
  'bypass'?: (_doppel_v1_BypassVolume)[];
  /**
   * per NIC, the cluster network it is on
   */
  'networks'?: (string)[];
  'cpuModel'?: (string);
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
  /**
   * Identity: a clone or a restore gets a new one; a backup keeps the source's.
   */
  'uuid': (string);
  /**
   * the NIC's MAC, xx:xx:xx:xx:xx:xx, unique in the fleet
   */
  'mac': (string);
  'hostname': (string);
  /**
   * as /etc/machine-id: 32 hex characters
   */
  'machineId': (string);
  'bypass': (_doppel_v1_BypassVolume__Output)[];
  /**
   * per NIC, the cluster network it is on
   */
  'networks': (string)[];
  'cpuModel': (string);
}
