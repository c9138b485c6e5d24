/** The backup repository: a content-addressed chunk store on a directory and its gRPC service. */
export { Repository, type RepositoryOptions, type ChunkInspection } from './store.js';
export { type CommitRequest } from './commit.js';
export { verifyBackup, type VerifyOptions } from './verify.js';
export { repositoryHandlers, type RepositoryServiceDeps } from './service.js';
export { startRepositoryServer, addRepositoryService, type RepositoryServer, type RepositoryServerOptions } from './server.js';
export { CHUNK_HEADER_BYTES, parseChunkFile } from './chunk-file.js';
