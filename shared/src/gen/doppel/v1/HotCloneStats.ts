// Original file: proto/doppel/v1/coordinator.proto

import type { FreezeLevel as _doppel_v1_FreezeLevel, FreezeLevel__Output as _doppel_v1_FreezeLevel__Output } from '../../doppel/v1/FreezeLevel.js';
import type { Long } from '@grpc/proto-loader';

/**
 * What a hot clone (seed 004) measured.
 */
export interface HotCloneStats {
  /**
   * SHA-256 of the source's frozen memory image ('' without verify)
   */
  'frozenHash'?: (string);
  /**
   * of the clone's memory before it first ran
   */
  'cloneHash'?: (string);
  'levels'?: (_doppel_v1_FreezeLevel)[];
  /**
   * source memory writes buffered while frozen
   */
  'bufferedWrites'?: (number | string | Long);
  /**
   * merged back afterwards (all of them)
   */
  'mergedWrites'?: (number | string | Long);
  /**
   * total time the source's guest could not write
   */
  'sourceStallMs'?: (number | string);
  'maxStallMs'?: (number | string);
  'bufferFullWaits'?: (number);
  /**
   * false: the source never entered the suspended run state
   */
  'sourceSuspended'?: (boolean);
  /**
   * RAM freeze to the end of the merge
   */
  'frozenMs'?: (number | string);
  'mergeMs'?: (number | string);
  'memoryBytesRaw'?: (number | string | Long);
  'memoryBytesWire'?: (number | string | Long);
  'memoryCopyMs'?: (number | string);
  /**
   * the clone overlays the frozen disks on the shared datastore
   */
  'diskLinked'?: (boolean);
  /**
   * copied (0 when linked)
   */
  'diskBlocks'?: (number | string | Long);
  'diskBytesRaw'?: (number | string | Long);
  'diskBytesWire'?: (number | string | Long);
  'diskCopyMs'?: (number | string);
  /**
   * data in the frozen layers source and clone share
   */
  'sharedBaseBytes'?: (number | string | Long);
  'totalMs'?: (number | string);
}

/**
 * What a hot clone (seed 004) measured.
 */
export interface HotCloneStats__Output {
  /**
   * SHA-256 of the source's frozen memory image ('' without verify)
   */
  'frozenHash': (string);
  /**
   * of the clone's memory before it first ran
   */
  'cloneHash': (string);
  'levels': (_doppel_v1_FreezeLevel__Output)[];
  /**
   * source memory writes buffered while frozen
   */
  'bufferedWrites': (number);
  /**
   * merged back afterwards (all of them)
   */
  'mergedWrites': (number);
  /**
   * total time the source's guest could not write
   */
  'sourceStallMs': (number);
  'maxStallMs': (number);
  'bufferFullWaits': (number);
  /**
   * false: the source never entered the suspended run state
   */
  'sourceSuspended': (boolean);
  /**
   * RAM freeze to the end of the merge
   */
  'frozenMs': (number);
  'mergeMs': (number);
  'memoryBytesRaw': (number);
  'memoryBytesWire': (number);
  'memoryCopyMs': (number);
  /**
   * the clone overlays the frozen disks on the shared datastore
   */
  'diskLinked': (boolean);
  /**
   * copied (0 when linked)
   */
  'diskBlocks': (number);
  'diskBytesRaw': (number);
  'diskBytesWire': (number);
  'diskCopyMs': (number);
  /**
   * data in the frozen layers source and clone share
   */
  'sharedBaseBytes': (number);
  'totalMs': (number);
}
