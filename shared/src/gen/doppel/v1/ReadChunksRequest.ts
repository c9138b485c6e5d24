// Original file: proto/doppel/v1/repository.proto


export interface ReadChunksRequest {
  'digests'?: (Buffer | Uint8Array | string)[];
}

export interface ReadChunksRequest__Output {
  'digests': (Buffer)[];
}
