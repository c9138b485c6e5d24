// Original file: proto/doppel/v1/coordinator.proto


export interface RemoveClusterResponse {
  'removed'?: (boolean);
}

export interface RemoveClusterResponse__Output {
  'removed': (boolean);
}
