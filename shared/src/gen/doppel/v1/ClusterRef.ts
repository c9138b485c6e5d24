// Original file: proto/doppel/v1/coordinator.proto


export interface ClusterRef {
  'name'?: (string);
}

export interface ClusterRef__Output {
  'name': (string);
}
