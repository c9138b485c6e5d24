// Original file: proto/doppel/v1/coordinator.proto


/**
 * A volume on the storage array the guest writes past the hypervisor (seed 001).
 */
export interface BypassVolume {
  'name'?: (string);
  'sizeMib'?: (number);
}

/**
 * A volume on the storage array the guest writes past the hypervisor (seed 001).
 */
export interface BypassVolume__Output {
  'name': (string);
  'sizeMib': (number);
}
