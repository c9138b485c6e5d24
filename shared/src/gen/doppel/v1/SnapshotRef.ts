// Original file: proto/doppel/v1/coordinator.proto


export interface SnapshotRef {
  /**
   * st-... (storage) or md-... (metadata)
   */
  'id'?: (string);
}

export interface SnapshotRef__Output {
  /**
   * st-... (storage) or md-... (metadata)
   */
  'id': (string);
}
