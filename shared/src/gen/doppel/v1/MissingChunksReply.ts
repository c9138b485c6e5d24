// Original file: proto/doppel/v1/repository.proto


export interface MissingChunksReply {
  /**
   * Indices into the request's digests.
   */
  'missing'?: (number)[];
}

export interface MissingChunksReply__Output {
  /**
   * Indices into the request's digests.
   */
  'missing': (number)[];
}
