// Original file: proto/doppel/v1/coordinator.proto


export interface ListSnapshotsRequest {
  /**
   * '' for every VM
   */
  'vm'?: (string);
}

export interface ListSnapshotsRequest__Output {
  /**
   * '' for every VM
   */
  'vm': (string);
}
