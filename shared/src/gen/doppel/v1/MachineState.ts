// Original file: proto/doppel/v1/dataplane.proto


/**
 * vCPU and device state, serialised by the driver (opaque to the data plane).
 */
export interface MachineState {
  'vcpu'?: (Buffer | Uint8Array | string);
  'devices'?: (Buffer | Uint8Array | string);
  'crc32'?: (number);
}

/**
 * vCPU and device state, serialised by the driver (opaque to the data plane).
 */
export interface MachineState__Output {
  'vcpu': (Buffer);
  'devices': (Buffer);
  'crc32': (number);
}
