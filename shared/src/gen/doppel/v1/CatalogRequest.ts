// Original file: proto/doppel/v1/coordinator.proto


export interface CatalogRequest {
  'vm'?: (string);
  'limit'?: (number);
}

export interface CatalogRequest__Output {
  'vm': (string);
  'limit': (number);
}
