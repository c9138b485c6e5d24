// Original file: proto/doppel/v1/coordinator.proto

import type { Host as _doppel_v1_Host, Host__Output as _doppel_v1_Host__Output } from '../../doppel/v1/Host.js';

export interface ListHostsResponse {
  'hosts'?: (_doppel_v1_Host)[];
}

export interface ListHostsResponse__Output {
  'hosts': (_doppel_v1_Host__Output)[];
}
