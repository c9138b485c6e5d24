// Original file: proto/doppel/v1/dataplane.proto


/**
 * The source's changed-block tracking for one disk at the switchover.
 */
export interface DiskChanges {
  'disk'?: (number);
  /**
   * false: tracking was lost; the next backup is full
   */
  'tracked'?: (boolean);
  'since'?: (string);
  /**
   * one bit per block, little-endian 32-bit words
   */
  'bitmap'?: (Buffer | Uint8Array | string);
}

/**
 * The source's changed-block tracking for one disk at the switchover.
 */
export interface DiskChanges__Output {
  'disk': (number);
  /**
   * false: tracking was lost; the next backup is full
   */
  'tracked': (boolean);
  'since': (string);
  /**
   * one bit per block, little-endian 32-bit words
   */
  'bitmap': (Buffer);
}
