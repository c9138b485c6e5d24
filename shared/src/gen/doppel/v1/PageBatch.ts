// Original file: proto/doppel/v1/dataplane.proto


/**
 * A batch of pages. Zero pages travel as indices only. The data of the other
 * pages is concatenated in index order and LZ4-block-compressed, or raw when
 * LZ4 cannot shrink it.
 */
export interface PageBatch {
  'round'?: (number);
  'zeroPages'?: (number)[];
  'dataPages'?: (number)[];
  'data'?: (Buffer | Uint8Array | string);
  'compressed'?: (boolean);
  /**
   * CRC-32 of `data` as sent, then zero_pages, then data_pages (little-endian uint32).
   */
  'crc32'?: (number);
}

/**
 * A batch of pages. Zero pages travel as indices only. The data of the other
 * pages is concatenated in index order and LZ4-block-compressed, or raw when
 * LZ4 cannot shrink it.
 */
export interface PageBatch__Output {
  'round': (number);
  'zeroPages': (number)[];
  'dataPages': (number)[];
  'data': (Buffer);
  'compressed': (boolean);
  /**
   * CRC-32 of `data` as sent, then zero_pages, then data_pages (little-endian uint32).
   */
  'crc32': (number);
}
