// Original file: proto/doppel/v1/dataplane.proto


export interface LayerChain {
  'layers'?: (string)[];
}

export interface LayerChain__Output {
  'layers': (string)[];
}
