// Original file: proto/doppel/v1/coordinator.proto


export interface ClonePlan {
  'sourceHost'?: (string);
  'targetHost'?: (string);
  'sourceVm'?: (string);
  'targetVm'?: (string);
  'bandwidthBytesPerS'?: (number | string);
  'dirtyPagesPerS'?: (number | string);
  'thresholdPages'?: (number);
  'maxDowntimeMs'?: (number);
  'maxRounds'?: (number);
  'predictedConverges'?: (boolean);
  'predictedRounds'?: (number);
  'predictedDowntimeMs'?: (number | string);
  'warning'?: (string);
  /**
   * The source agent's start time: a restarted agent has forgotten the job.
   */
  'sourceAgentStartedAt'?: (string);
}

export interface ClonePlan__Output {
  'sourceHost': (string);
  'targetHost': (string);
  'sourceVm': (string);
  'targetVm': (string);
  'bandwidthBytesPerS': (number);
  'dirtyPagesPerS': (number);
  'thresholdPages': (number);
  'maxDowntimeMs': (number);
  'maxRounds': (number);
  'predictedConverges': (boolean);
  'predictedRounds': (number);
  'predictedDowntimeMs': (number);
  'warning': (string);
  /**
   * The source agent's start time: a restarted agent has forgotten the job.
   */
  'sourceAgentStartedAt': (string);
}
