// Original file: proto/doppel/v1/coordinator.proto


export interface ListClustersRequest {
}

export interface ListClustersRequest__Output {
}
