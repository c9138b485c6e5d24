// Original file: proto/doppel/v1/repository.proto


export interface Chunk {
  /**
   * SHA-256 of the raw (uncompressed) content, 32 bytes.
   */
  'digest'?: (Buffer | Uint8Array | string);
  'rawLength'?: (number);
  /**
   * `data` is one LZ4 block; otherwise the raw bytes (LZ4 could not shrink them).
   */
  'compressed'?: (boolean);
  'data'?: (Buffer | Uint8Array | string);
}

export interface Chunk__Output {
  /**
   * SHA-256 of the raw (uncompressed) content, 32 bytes.
   */
  'digest': (Buffer);
  'rawLength': (number);
  /**
   * `data` is one LZ4 block; otherwise the raw bytes (LZ4 could not shrink them).
   */
  'compressed': (boolean);
  'data': (Buffer);
}
