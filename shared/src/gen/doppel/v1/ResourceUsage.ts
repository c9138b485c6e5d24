// Original file: proto/doppel/v1/coordinator.proto


export interface ResourceUsage {
  'cpuPercent'?: (number | string);
  'memoryMib'?: (number);
  'dirtyPagesPerS'?: (number | string);
  'diskReadBytesPerS'?: (number | string);
  'diskWriteBytesPerS'?: (number | string);
  'netRxBytesPerS'?: (number | string);
  'netTxBytesPerS'?: (number | string);
  'windowMs'?: (number | string);
}

export interface ResourceUsage__Output {
  'cpuPercent': (number);
  'memoryMib': (number);
  'dirtyPagesPerS': (number);
  'diskReadBytesPerS': (number);
  'diskWriteBytesPerS': (number);
  'netRxBytesPerS': (number);
  'netTxBytesPerS': (number);
  'windowMs': (number);
}
