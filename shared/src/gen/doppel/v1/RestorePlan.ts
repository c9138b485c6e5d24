// Original file: proto/doppel/v1/coordinator.proto

import type { PlanChange as _doppel_v1_PlanChange, PlanChange__Output as _doppel_v1_PlanChange__Output } from '../../doppel/v1/PlanChange.js';
import type { Long } from '@grpc/proto-loader';

export interface RestorePlan {
  'backupId'?: (string);
  'vmName'?: (string);
  'sourceCluster'?: (string);
  'destinationCluster'?: (string);
  'changes'?: (_doppel_v1_PlanChange)[];
  /**
   * what the destination cannot satisfy; a restore with any moves no data
   */
  'problems'?: (string)[];
  'datastore'?: (string);
  'datastorePath'?: (string);
  /**
   * up hosts that mount the datastore and can hold the VM, best first
   */
  'hosts'?: (string)[];
  'cpuModel'?: (string);
  /**
   * per NIC
   */
  'networks'?: (string)[];
  'memoryMib'?: (number);
  'diskMib'?: (number | string | Long);
}

export interface RestorePlan__Output {
  'backupId': (string);
  'vmName': (string);
  'sourceCluster': (string);
  'destinationCluster': (string);
  'changes': (_doppel_v1_PlanChange__Output)[];
  /**
   * what the destination cannot satisfy; a restore with any moves no data
   */
  'problems': (string)[];
  'datastore': (string);
  'datastorePath': (string);
  /**
   * up hosts that mount the datastore and can hold the VM, best first
   */
  'hosts': (string)[];
  'cpuModel': (string);
  /**
   * per NIC
   */
  'networks': (string)[];
  'memoryMib': (number);
  'diskMib': (number);
}
