// Original file: proto/doppel/v1/coordinator.proto


export interface ListHostsRequest {
}

export interface ListHostsRequest__Output {
}
