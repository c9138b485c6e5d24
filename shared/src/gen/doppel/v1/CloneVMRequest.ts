// Original file: proto/doppel/v1/coordinator.proto


export interface CloneVMRequest {
  /**
   * id or name of the source VM
   */
  'vm'?: (string);
  /**
   * empty: the coordinator picks one with room
   */
  'targetHost'?: (string);
  /**
   * default 300
   */
  'maxDowntimeMs'?: (number);
  /**
   * refuse (default) | warn
   */
  'onNonConvergence'?: (string);
  /**
   * default 30
   */
  'maxRounds'?: (number);
  /**
   * hash source and clone (reported apart from downtime)
   */
  'verify'?: (boolean);
  'cloneName'?: (string);
  /**
   * Test-only fault injection, honoured only by agents started with
   * --allow-fault-injection: corrupt-frame | oversized-frame
   */
  'fault'?: (string);
  /**
   * Cap on the page stream, MB/s of raw page bytes (0: none), as QEMU's max-bandwidth.
   */
  'maxBandwidthMbps'?: (number);
}

export interface CloneVMRequest__Output {
  /**
   * id or name of the source VM
   */
  'vm': (string);
  /**
   * empty: the coordinator picks one with room
   */
  'targetHost': (string);
  /**
   * default 300
   */
  'maxDowntimeMs': (number);
  /**
   * refuse (default) | warn
   */
  'onNonConvergence': (string);
  /**
   * default 30
   */
  'maxRounds': (number);
  /**
   * hash source and clone (reported apart from downtime)
   */
  'verify': (boolean);
  'cloneName': (string);
  /**
   * Test-only fault injection, honoured only by agents started with
   * --allow-fault-injection: corrupt-frame | oversized-frame
   */
  'fault': (string);
  /**
   * Cap on the page stream, MB/s of raw page bytes (0: none), as QEMU's max-bandwidth.
   */
  'maxBandwidthMbps': (number);
}
