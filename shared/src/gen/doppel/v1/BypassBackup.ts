// Original file: proto/doppel/v1/coordinator.proto

import type { BypassBackupVolume as _doppel_v1_BypassBackupVolume, BypassBackupVolume__Output as _doppel_v1_BypassBackupVolume__Output } from '../../doppel/v1/BypassBackupVolume.js';
import type { Long } from '@grpc/proto-loader';

/**
 * A bypass-mode backup (seed 001): the image disks and the bypass volumes as of one moment, t1.
 */
export interface BypassBackup {
  /**
   * the first snapshot: bypass volumes on the array, image disks on the host, one fenced moment
   */
  't1'?: (string);
  /**
   * the second snapshot, of the image disks, the image backup was made from
   */
  't2'?: (string);
  'array'?: (string);
  /**
   * kept on the array as the next incremental's base
   */
  'arraySnapshot'?: (string);
  'volumes'?: (_doppel_v1_BypassBackupVolume)[];
  /**
   * image blocks written between t1 and t2, taken back to their t1 content
   */
  'blocksReverted'?: (number | string | Long);
  /**
   * false only when a test skipped the revert
   */
  'reverted'?: (boolean);
  /**
   * the guest paused for the t1 fence
   */
  'fenceMs'?: (number | string);
  'revertMs'?: (number | string);
}

/**
 * A bypass-mode backup (seed 001): the image disks and the bypass volumes as of one moment, t1.
 */
export interface BypassBackup__Output {
  /**
   * the first snapshot: bypass volumes on the array, image disks on the host, one fenced moment
   */
  't1': (string);
  /**
   * the second snapshot, of the image disks, the image backup was made from
   */
  't2': (string);
  'array': (string);
  /**
   * kept on the array as the next incremental's base
   */
  'arraySnapshot': (string);
  'volumes': (_doppel_v1_BypassBackupVolume__Output)[];
  /**
   * image blocks written between t1 and t2, taken back to their t1 content
   */
  'blocksReverted': (number);
  /**
   * false only when a test skipped the revert
   */
  'reverted': (boolean);
  /**
   * the guest paused for the t1 fence
   */
  'fenceMs': (number);
  'revertMs': (number);
}
