// Original file: proto/doppel/v1/dataplane.proto


export interface VerifyCloneReply {
  'memoryHash'?: (string);
  'hashMs'?: (number | string);
}

export interface VerifyCloneReply__Output {
  'memoryHash': (string);
  'hashMs': (number);
}
