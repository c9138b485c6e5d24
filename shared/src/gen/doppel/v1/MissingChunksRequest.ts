// Original file: proto/doppel/v1/repository.proto


export interface MissingChunksRequest {
  'digests'?: (Buffer | Uint8Array | string)[];
}

export interface MissingChunksRequest__Output {
  'digests': (Buffer)[];
}
