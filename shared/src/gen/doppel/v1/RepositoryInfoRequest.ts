// Original file: proto/doppel/v1/repository.proto


export interface RepositoryInfoRequest {
}

export interface RepositoryInfoRequest__Output {
}
