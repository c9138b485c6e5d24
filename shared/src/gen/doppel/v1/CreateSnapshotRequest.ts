// Original file: proto/doppel/v1/coordinator.proto


export interface CreateSnapshotRequest {
  'vm'?: (string);
  'storageOnly'?: (boolean);
}

export interface CreateSnapshotRequest__Output {
  'vm': (string);
  'storageOnly': (boolean);
}
