// Original file: proto/doppel/v1/coordinator.proto


export interface CheckSnapshotsRequest {
}

export interface CheckSnapshotsRequest__Output {
}
