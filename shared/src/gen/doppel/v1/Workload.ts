// Original file: proto/doppel/v1/coordinator.proto


export interface Workload {
  /**
   * pages per second the guest writes
   */
  'dirtyRate'?: (number);
  /**
   * uniform | hotset | sequential
   */
  'pattern'?: (string);
  'seed'?: (number);
  /**
   * 4 KiB disk writes per second
   */
  'diskWriteRate'?: (number);
  /**
   * consistency-token steps per second: first disk and first bypass volume, one step
   */
  'tokenRate'?: (number);
  /**
   * 4 KiB writes per second to the bypass volumes, straight to the array
   */
  'bypassWriteRate'?: (number);
}

export interface Workload__Output {
  /**
   * pages per second the guest writes
   */
  'dirtyRate': (number);
  /**
   * uniform | hotset | sequential
   */
  'pattern': (string);
  'seed': (number);
  /**
   * 4 KiB disk writes per second
   */
  'diskWriteRate': (number);
  /**
   * consistency-token steps per second: first disk and first bypass volume, one step
   */
  'tokenRate': (number);
  /**
   * 4 KiB writes per second to the bypass volumes, straight to the array
   */
  'bypassWriteRate': (number);
}
