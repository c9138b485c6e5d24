// Original file: proto/doppel/v1/coordinator.proto

import type { RestorePlan as _doppel_v1_RestorePlan, RestorePlan__Output as _doppel_v1_RestorePlan__Output } from '../../doppel/v1/RestorePlan.js';
import type { Long } from '@grpc/proto-loader';

export interface RestoreJob {
  'backupId'?: (string);
  'targetHost'?: (string);
  'vmName'?: (string);
  'vmId'?: (string);
  /**
   * content hashes of the restored disks
   */
  'diskHashes'?: (string)[];
  'hashesMatch'?: (boolean);
  'bytesWritten'?: (number | string | Long);
  'ms'?: (number | string);
  /**
   * A bypass-mode backup: the consistency tokens read from the restored VM before it ran (equal when time-consistent).
   */
  'imageToken'?: (number | string | Long);
  'bypassToken'?: (number | string | Long);
  'hasTokens'?: (boolean);
  /**
   * Where the VM was restored (seed 003): its cluster, first NIC's network, datastore directory, CPU model.
   */
  'cluster'?: (string);
  'network'?: (string);
  'datastorePath'?: (string);
  'cpuModel'?: (string);
  /**
   * the plan the restore applied
   */
  'plan'?: (_doppel_v1_RestorePlan | null);
}

export interface RestoreJob__Output {
  'backupId': (string);
  'targetHost': (string);
  'vmName': (string);
  'vmId': (string);
  /**
   * content hashes of the restored disks
   */
  'diskHashes': (string)[];
  'hashesMatch': (boolean);
  'bytesWritten': (number);
  'ms': (number);
  /**
   * A bypass-mode backup: the consistency tokens read from the restored VM before it ran (equal when time-consistent).
   */
  'imageToken': (number);
  'bypassToken': (number);
  'hasTokens': (boolean);
  /**
   * Where the VM was restored (seed 003): its cluster, first NIC's network, datastore directory, CPU model.
   */
  'cluster': (string);
  'network': (string);
  'datastorePath': (string);
  'cpuModel': (string);
  /**
   * the plan the restore applied
   */
  'plan': (_doppel_v1_RestorePlan__Output | null);
}
