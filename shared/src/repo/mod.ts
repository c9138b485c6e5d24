/** The backup repository's client side: the gRPC client, chunk upload with digests first, content hashes. */
export {};
