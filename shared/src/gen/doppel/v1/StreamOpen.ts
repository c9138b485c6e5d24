// Original file: proto/doppel/v1/dataplane.proto


export interface StreamOpen {
  'jobId'?: (string);
  /**
   * The suspended clone VM the target prepared for this job; empty for a probe.
   */
  'targetVmId'?: (string);
  'pageSize'?: (number);
  'pageCount'?: (number);
  /**
   * A probe measures bandwidth: the target verifies and discards the pages.
   */
  'probe'?: (boolean);
}

export interface StreamOpen__Output {
  'jobId': (string);
  /**
   * The suspended clone VM the target prepared for this job; empty for a probe.
   */
  'targetVmId': (string);
  'pageSize': (number);
  'pageCount': (number);
  /**
   * A probe measures bandwidth: the target verifies and discards the pages.
   */
  'probe': (boolean);
}
