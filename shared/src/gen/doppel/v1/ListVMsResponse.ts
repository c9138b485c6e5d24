// Original file: proto/doppel/v1/coordinator.proto

import type { VM as _doppel_v1_VM, VM__Output as _doppel_v1_VM__Output } from '../../doppel/v1/VM.js';

export interface ListVMsResponse {
  'vms'?: (_doppel_v1_VM)[];
}

export interface ListVMsResponse__Output {
  'vms': (_doppel_v1_VM__Output)[];
}
