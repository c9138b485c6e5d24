// Original file: proto/doppel/v1/coordinator.proto


/**
 * One level of a hot clone's freeze; they freeze slowest first.
 */
export interface FreezeLevel {
  /**
   * io (device and disk caches) | ram | vcpu
   */
  'level'?: (string);
  'what'?: (string);
  /**
   * after the first level froze
   */
  'offsetMs'?: (number | string);
}

/**
 * One level of a hot clone's freeze; they freeze slowest first.
 */
export interface FreezeLevel__Output {
  /**
   * io (device and disk caches) | ram | vcpu
   */
  'level': (string);
  'what': (string);
  /**
   * after the first level froze
   */
  'offsetMs': (number);
}
