// Original file: proto/doppel/v1/coordinator.proto


export interface ClusterNetwork {
  'name'?: (string);
  'bridge'?: (string);
  /**
   * 0: untagged
   */
  'vlan'?: (number);
}

export interface ClusterNetwork__Output {
  'name': (string);
  'bridge': (string);
  /**
   * 0: untagged
   */
  'vlan': (number);
}
