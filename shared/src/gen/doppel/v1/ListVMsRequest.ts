// Original file: proto/doppel/v1/coordinator.proto


export interface ListVMsRequest {
  'host'?: (string);
}

export interface ListVMsRequest__Output {
  'host': (string);
}
