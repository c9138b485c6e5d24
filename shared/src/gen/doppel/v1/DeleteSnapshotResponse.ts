// Original file: proto/doppel/v1/coordinator.proto


export interface DeleteSnapshotResponse {
  'deleted'?: (boolean);
  /**
   * it was the last storage snapshot of its metadata snapshot
   */
  'metadataDeleted'?: (boolean);
}

export interface DeleteSnapshotResponse__Output {
  'deleted': (boolean);
  /**
   * it was the last storage snapshot of its metadata snapshot
   */
  'metadataDeleted': (boolean);
}
