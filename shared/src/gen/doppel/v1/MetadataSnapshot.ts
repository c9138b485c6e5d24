// Original file: proto/doppel/v1/coordinator.proto

import type { VM as _doppel_v1_VM, VM__Output as _doppel_v1_VM__Output } from '../../doppel/v1/VM.js';
import type { ResourceUsage as _doppel_v1_ResourceUsage, ResourceUsage__Output as _doppel_v1_ResourceUsage__Output } from '../../doppel/v1/ResourceUsage.js';
import type { Long } from '@grpc/proto-loader';

export interface MetadataSnapshot {
  'id'?: (string);
  'vm'?: (string);
  'vmName'?: (string);
  'host'?: (string);
  'timestamp'?: (string);
  /**
   * the configuration
   */
  'config'?: (_doppel_v1_VM | null);
  /**
   * execution state: running | suspended
   */
  'runState'?: (string);
  /**
   * vCPU state as the driver serialises it (JSON)
   */
  'vcpuState'?: (string);
  /**
   * device state (JSON)
   */
  'deviceState'?: (string);
  'resources'?: (_doppel_v1_ResourceUsage | null);
  'createdAt'?: (string);
  /**
   * its KV revision
   */
  'revision'?: (number | string | Long);
  /**
   * where it lives: nats-kv://BUCKET/KEY
   */
  'store'?: (string);
}

export interface MetadataSnapshot__Output {
  'id': (string);
  'vm': (string);
  'vmName': (string);
  'host': (string);
  'timestamp': (string);
  /**
   * the configuration
   */
  'config': (_doppel_v1_VM__Output | null);
  /**
   * execution state: running | suspended
   */
  'runState': (string);
  /**
   * vCPU state as the driver serialises it (JSON)
   */
  'vcpuState': (string);
  /**
   * device state (JSON)
   */
  'deviceState': (string);
  'resources': (_doppel_v1_ResourceUsage__Output | null);
  'createdAt': (string);
  /**
   * its KV revision
   */
  'revision': (number);
  /**
   * where it lives: nats-kv://BUCKET/KEY
   */
  'store': (string);
}
