// Original file: proto/doppel/v1/repository.proto


export interface IndexRef {
  'backupId'?: (string);
  'disk'?: (string);
}

export interface IndexRef__Output {
  'backupId': (string);
  'disk': (string);
}
