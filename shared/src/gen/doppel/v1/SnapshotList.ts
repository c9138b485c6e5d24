// Original file: proto/doppel/v1/coordinator.proto

import type { MetadataSnapshot as _doppel_v1_MetadataSnapshot, MetadataSnapshot__Output as _doppel_v1_MetadataSnapshot__Output } from '../../doppel/v1/MetadataSnapshot.js';
import type { StorageSnapshot as _doppel_v1_StorageSnapshot, StorageSnapshot__Output as _doppel_v1_StorageSnapshot__Output } from '../../doppel/v1/StorageSnapshot.js';

export interface SnapshotList {
  'metadata'?: (_doppel_v1_MetadataSnapshot)[];
  'storage'?: (_doppel_v1_StorageSnapshot)[];
}

export interface SnapshotList__Output {
  'metadata': (_doppel_v1_MetadataSnapshot__Output)[];
  'storage': (_doppel_v1_StorageSnapshot__Output)[];
}
