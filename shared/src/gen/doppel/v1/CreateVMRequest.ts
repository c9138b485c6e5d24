// Original file: proto/doppel/v1/coordinator.proto

import type { Workload as _doppel_v1_Workload, Workload__Output as _doppel_v1_Workload__Output } from '../../doppel/v1/Workload.js';
import type { Disk as _doppel_v1_Disk, Disk__Output as _doppel_v1_Disk__Output } from '../../doppel/v1/Disk.js';
import type { BypassVolume as _doppel_v1_BypassVolume, BypassVolume__Output as _doppel_v1_BypassVolume__Output } from '../../doppel/v1/BypassVolume.js';

export interface CreateVMRequest {
  'name'?: (string);
  /**
   * empty: the coordinator picks a host with room
   */
  'host'?: (string);
  'memoryMib'?: (number);
  'vcpus'?: (number);
  'workload'?: (_doppel_v1_Workload | null);
  /**
   * empty: one 64 MiB disk 'disk0' of image 'base'
   */
  'disks'?: (_doppel_v1_Disk)[];
  /**
   * empty: the VM's name
   */
  'hostname'?: (string);
  /**
   * empty: a new one under 52:54:00, unique in the fleet; given: refused if a VM has it
   */
  'mac'?: (string);
  /**
   * volumes on the host's storage array, made with the VM (the host needs --array)
   */
  'bypass'?: (_doppel_v1_BypassVolume)[];
  /**
   * a NIC on each of these networks of the host's cluster
   */
  'networks'?: (string)[];
  /**
   * one of the cluster's; empty: its first
   */
  'cpuModel'?: (string);
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
  /**
   * empty: one 64 MiB disk 'disk0' of image 'base'
   */
  'disks': (_doppel_v1_Disk__Output)[];
  /**
   * empty: the VM's name
   */
  'hostname': (string);
  /**
   * empty: a new one under 52:54:00, unique in the fleet; given: refused if a VM has it
   */
  'mac': (string);
  /**
   * volumes on the host's storage array, made with the VM (the host needs --array)
   */
  'bypass': (_doppel_v1_BypassVolume__Output)[];
  /**
   * a NIC on each of these networks of the host's cluster
   */
  'networks': (string)[];
  /**
   * one of the cluster's; empty: its first
   */
  'cpuModel': (string);
}
