// Original file: proto/doppel/v1/repository.proto


export interface BackupRef {
  'backupId'?: (string);
}

export interface BackupRef__Output {
  'backupId': (string);
}
