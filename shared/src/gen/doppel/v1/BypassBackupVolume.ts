// Original file: proto/doppel/v1/coordinator.proto


export interface BypassBackupVolume {
  /**
   * in the VM
   */
  'name'?: (string);
  /**
   * on the array
   */
  'volume'?: (string);
  /**
   * as a disk of the backup
   */
  'disk'?: (string);
}

export interface BypassBackupVolume__Output {
  /**
   * in the VM
   */
  'name': (string);
  /**
   * on the array
   */
  'volume': (string);
  /**
   * as a disk of the backup
   */
  'disk': (string);
}
