// Original file: proto/doppel/v1/dataplane.proto


export interface MigrationOpen {
  'jobId'?: (string);
  'targetVmId'?: (string);
}

export interface MigrationOpen__Output {
  'jobId': (string);
  'targetVmId': (string);
}
