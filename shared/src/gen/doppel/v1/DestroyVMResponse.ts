// Original file: proto/doppel/v1/coordinator.proto


export interface DestroyVMResponse {
  'destroyed'?: (boolean);
}

export interface DestroyVMResponse__Output {
  'destroyed': (boolean);
}
