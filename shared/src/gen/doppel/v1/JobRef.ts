// Original file: proto/doppel/v1/coordinator.proto


export interface JobRef {
  'id'?: (string);
}

export interface JobRef__Output {
  'id': (string);
}
