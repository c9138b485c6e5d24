// Original file: proto/doppel/v1/coordinator.proto

import type { Job as _doppel_v1_Job, Job__Output as _doppel_v1_Job__Output } from '../../doppel/v1/Job.js';

export interface ListJobsResponse {
  'jobs'?: (_doppel_v1_Job)[];
}

export interface ListJobsResponse__Output {
  'jobs': (_doppel_v1_Job__Output)[];
}
