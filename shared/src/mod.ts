/** The public face of doppel's shared package: protocol types, framing, errors, logging, NATS and gRPC helpers. */
export * from './errors.js';
export * from './ids.js';
export * from './logging.js';
export * from './protocol/subjects.js';
export * from './protocol/types.js';
export * from './frame/page-batch.js';
export * from './grpc/status.js';
export * from './grpc/loader.js';
export * from './nats/connect.js';
export * from './nats/json.js';
export * from './nats/streams.js';
export * from './nats/commands.js';
export * from './nats/events.js';
export * from './validate.js';
export * from './precopy-rule.js';
export * from './grpc/http2-window.js';
export * from './repo/mod.js';
