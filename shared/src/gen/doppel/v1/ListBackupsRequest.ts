// Original file: proto/doppel/v1/repository.proto


export interface ListBackupsRequest {
  'withMetadata'?: (boolean);
  /**
   * The newest `limit` backups; 0 = all.
   */
  'limit'?: (number);
}

export interface ListBackupsRequest__Output {
  'withMetadata': (boolean);
  /**
   * The newest `limit` backups; 0 = all.
   */
  'limit': (number);
}
