// Original file: proto/doppel/v1/coordinator.proto


export interface VMRef {
  'vm'?: (string);
}

export interface VMRef__Output {
  'vm': (string);
}
