// Original file: proto/doppel/v1/repository.proto


export interface RepositoryInfo {
  'format'?: (number);
  'chunkSize'?: (number);
  'maxMissingQuery'?: (number);
  'maxReadChunks'?: (number);
  'maxMessageBytes'?: (number);
}

export interface RepositoryInfo__Output {
  'format': (number);
  'chunkSize': (number);
  'maxMissingQuery': (number);
  'maxReadChunks': (number);
  'maxMessageBytes': (number);
}
