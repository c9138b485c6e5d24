// Original file: proto/doppel/v1/coordinator.proto

import type { Capacity as _doppel_v1_Capacity, Capacity__Output as _doppel_v1_Capacity__Output } from '../../doppel/v1/Capacity.js';
import type { Long } from '@grpc/proto-loader';

export interface Host {
  'name'?: (string);
  /**
   * gRPC data-plane address
   */
  'dataAddr'?: (string);
  'driver'?: (string);
  /**
   * up | down
   */
  'state'?: (string);
  'capacity'?: (_doppel_v1_Capacity | null);
  'usedMemoryMib'?: (number | string | Long);
  'vmCount'?: (number);
  /**
   * RFC 3339
   */
  'lastSeen'?: (string);
  'agentRssBytes'?: (number | string | Long);
  'agentPeakRssBytes'?: (number | string | Long);
  /**
   * hosts with the same datastore id share disk storage
   */
  'datastore'?: (string);
  'cluster'?: (string);
  'datastorePath'?: (string);
  'datastoreFreeMib'?: (number | string | Long);
  'datastoreUsedMib'?: (number | string | Long);
  /**
   * qemu: kvm | tcg (how its guests run); sim: sim
   */
  'accel'?: (string);
}

export interface Host__Output {
  'name': (string);
  /**
   * gRPC data-plane address
   */
  'dataAddr': (string);
  'driver': (string);
  /**
   * up | down
   */
  'state': (string);
  'capacity': (_doppel_v1_Capacity__Output | null);
  'usedMemoryMib': (number);
  'vmCount': (number);
  /**
   * RFC 3339
   */
  'lastSeen': (string);
  'agentRssBytes': (number);
  'agentPeakRssBytes': (number);
  /**
   * hosts with the same datastore id share disk storage
   */
  'datastore': (string);
  'cluster': (string);
  'datastorePath': (string);
  'datastoreFreeMib': (number);
  'datastoreUsedMib': (number);
  /**
   * qemu: kvm | tcg (how its guests run); sim: sim
   */
  'accel': (string);
}
