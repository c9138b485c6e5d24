// Original file: proto/doppel/v1/coordinator.proto

import type { Long } from '@grpc/proto-loader';

export interface Event {
  'seq'?: (number | string | Long);
  /**
   * clone.started | clone.round | clone.switchover | clone.completed | clone.failed | ...
   */
  'type'?: (string);
  'time'?: (string);
  'jobId'?: (string);
  'host'?: (string);
  'vm'?: (string);
  /**
   * the full event as JSON
   */
  'json'?: (string);
}

export interface Event__Output {
  'seq': (number);
  /**
   * clone.started | clone.round | clone.switchover | clone.completed | clone.failed | ...
   */
  'type': (string);
  'time': (string);
  'jobId': (string);
  'host': (string);
  'vm': (string);
  /**
   * the full event as JSON
   */
  'json': (string);
}
