// Original file: proto/doppel/v1/dataplane.proto


export interface VerifyCloneRequest {
  'jobId'?: (string);
  'targetVmId'?: (string);
}

export interface VerifyCloneRequest__Output {
  'jobId': (string);
  'targetVmId': (string);
}
