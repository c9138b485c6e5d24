// Original file: proto/doppel/v1/coordinator.proto

import type { CloneStats as _doppel_v1_CloneStats, CloneStats__Output as _doppel_v1_CloneStats__Output } from '../../doppel/v1/CloneStats.js';
import type { Long } from '@grpc/proto-loader';

export interface BackupStats {
  /**
   * how long the source VM was suspended for this backup
   */
  'sourcePausedMs'?: (number | string);
  /**
   * disk bytes read to make the backup
   */
  'bytesRead'?: (number | string | Long);
  /**
   * bytes sent to and stored by the repository (new chunks, compressed)
   */
  'bytesStored'?: (number | string | Long);
  'chunksNew'?: (number);
  /**
   * already in the repository, or carried over from the base
   */
  'chunksReused'?: (number);
  'chunksZero'?: (number);
  'chunksTotal'?: (number);
  /**
   * clone mode: the clone's disk copy
   */
  'diskCopyMs'?: (number | string);
  'diskCopyBytes'?: (number | string | Long);
  /**
   * the clone used an overlay on a shared datastore instead of a copy
   */
  'linkedClone'?: (boolean);
  'uploadMs'?: (number | string);
  'totalMs'?: (number | string);
  /**
   * clone mode: the live clone's own figures
   */
  'clone'?: (_doppel_v1_CloneStats | null);
}

export interface BackupStats__Output {
  /**
   * how long the source VM was suspended for this backup
   */
  'sourcePausedMs': (number);
  /**
   * disk bytes read to make the backup
   */
  'bytesRead': (number);
  /**
   * bytes sent to and stored by the repository (new chunks, compressed)
   */
  'bytesStored': (number);
  'chunksNew': (number);
  /**
   * already in the repository, or carried over from the base
   */
  'chunksReused': (number);
  'chunksZero': (number);
  'chunksTotal': (number);
  /**
   * clone mode: the clone's disk copy
   */
  'diskCopyMs': (number);
  'diskCopyBytes': (number);
  /**
   * the clone used an overlay on a shared datastore instead of a copy
   */
  'linkedClone': (boolean);
  'uploadMs': (number);
  'totalMs': (number);
  /**
   * clone mode: the live clone's own figures
   */
  'clone': (_doppel_v1_CloneStats__Output | null);
}
