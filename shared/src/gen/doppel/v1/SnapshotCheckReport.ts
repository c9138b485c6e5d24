// Original file: proto/doppel/v1/coordinator.proto


export interface SnapshotCheckReport {
  /**
   * storage snapshot ids (on hosts) with no catalog link or no metadata
   */
  'storageWithoutMetadata'?: (string)[];
  /**
   * metadata ids no existing storage snapshot links to
   */
  'metadataWithoutStorage'?: (string)[];
  'hostsChecked'?: (string)[];
  'hostsUnreachable'?: (string)[];
}

export interface SnapshotCheckReport__Output {
  /**
   * storage snapshot ids (on hosts) with no catalog link or no metadata
   */
  'storageWithoutMetadata': (string)[];
  /**
   * metadata ids no existing storage snapshot links to
   */
  'metadataWithoutStorage': (string)[];
  'hostsChecked': (string)[];
  'hostsUnreachable': (string)[];
}
