/** The backup repository's client side: the gRPC client, chunk upload with digests first, restore, content hashes. */
export * from './types.js';
export * from './content-hash.js';
export * from './chunk-codec.js';
export * from './client.js';
export * from './upload.js';
export * from './restore.js';
export * from './buffer-pool.js';
export * from './hash-pool.js';
