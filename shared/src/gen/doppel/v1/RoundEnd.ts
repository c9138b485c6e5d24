// Original file: proto/doppel/v1/dataplane.proto


export interface RoundEnd {
  'round'?: (number);
  'pages'?: (number);
}

export interface RoundEnd__Output {
  'round': (number);
  'pages': (number);
}
