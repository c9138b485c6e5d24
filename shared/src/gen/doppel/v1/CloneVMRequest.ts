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
  /**
   * The clone's hostname (empty: the clone's name). The clone always gets a new UUID, MAC and machine id.
   */
  'hostname'?: (string);
  /**
   * A hot clone (seed 004): the source is never suspended; its memory writes are buffered while the
   * frozen image is copied, then merged back.
   */
  'hot'?: (boolean);
  /**
   * With hot: copy the disks in full to a target that does not share the source's datastore (else refused).
   */
  'copyDisks'?: (boolean);
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
  /**
   * The clone's hostname (empty: the clone's name). The clone always gets a new UUID, MAC and machine id.
   */
  'hostname': (string);
  /**
   * A hot clone (seed 004): the source is never suspended; its memory writes are buffered while the
   * frozen image is copied, then merged back.
   */
  'hot': (boolean);
  /**
   * With hot: copy the disks in full to a target that does not share the source's datastore (else refused).
   */
  'copyDisks': (boolean);
}
