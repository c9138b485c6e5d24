// Original file: proto/doppel/v1/coordinator.proto

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
}
