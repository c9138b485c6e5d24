// Original file: proto/doppel/v1/coordinator.proto


export interface BackupId {
  'id'?: (string);
}

export interface BackupId__Output {
  'id': (string);
}
