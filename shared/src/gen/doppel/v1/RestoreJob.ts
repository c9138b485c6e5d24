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
  /**
   * A bypass-mode backup: the consistency tokens read from the restored VM before it ran (equal when time-consistent).
   */
  'imageToken'?: (number | string | Long);
  'bypassToken'?: (number | string | Long);
  'hasTokens'?: (boolean);
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
}
