// Original file: proto/doppel/v1/coordinator.proto


export interface SnapshotDisk {
  'name'?: (string);
  'sizeMib'?: (number);
  /**
   * copy-on-write layers under the snapshot
   */
  'layers'?: (number);
}

export interface SnapshotDisk__Output {
  'name': (string);
  'sizeMib': (number);
  /**
   * copy-on-write layers under the snapshot
   */
  'layers': (number);
}
