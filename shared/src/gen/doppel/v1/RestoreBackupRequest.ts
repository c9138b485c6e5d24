// Original file: proto/doppel/v1/coordinator.proto


export interface RestoreBackupRequest {
  'backup'?: (string);
  /**
   * a host; with to_cluster it must be one of the cluster's
   */
  'toHost'?: (string);
  /**
   * default: the backed-up VM's name with a -restored-XXXX suffix
   */
  'asName'?: (string);
  /**
   * run the VM once restored and checked
   */
  'start'?: (boolean);
  /**
   * a cluster: the plan picks the datastore and the host
   */
  'toCluster'?: (string);
  /**
   * overrides of the plan's rules: net:A=B, store:X=Y, cpu:X=Y
   */
  'maps'?: (string)[];
}

export interface RestoreBackupRequest__Output {
  'backup': (string);
  /**
   * a host; with to_cluster it must be one of the cluster's
   */
  'toHost': (string);
  /**
   * default: the backed-up VM's name with a -restored-XXXX suffix
   */
  'asName': (string);
  /**
   * run the VM once restored and checked
   */
  'start': (boolean);
  /**
   * a cluster: the plan picks the datastore and the host
   */
  'toCluster': (string);
  /**
   * overrides of the plan's rules: net:A=B, store:X=Y, cpu:X=Y
   */
  'maps': (string)[];
}
