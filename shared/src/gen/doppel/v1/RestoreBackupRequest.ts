// Original file: proto/doppel/v1/coordinator.proto


export interface RestoreBackupRequest {
  'backup'?: (string);
  'toHost'?: (string);
  /**
   * default: the backed-up VM's name with a -restored-XXXX suffix
   */
  'asName'?: (string);
  /**
   * run the VM once restored and checked
   */
  'start'?: (boolean);
}

export interface RestoreBackupRequest__Output {
  'backup': (string);
  'toHost': (string);
  /**
   * default: the backed-up VM's name with a -restored-XXXX suffix
   */
  'asName': (string);
  /**
   * run the VM once restored and checked
   */
  'start': (boolean);
}
