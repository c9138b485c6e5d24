/** Runs the backup repository as a gRPC server, standalone or inside another process (the coordinator). */
import { Server } from '@grpc/grpc-js';
import {
  INSECURE,
  REPOSITORY_MAX_MESSAGE_BYTES,
  guardHandlers,
  loadRepositoryProto,
  raiseServerWindows,
  requirePeer,
  serverCredentials,
  shutdownServer,
  type Logger,
  type Transport,
} from '../../shared/src/mod.js';
import { repositoryHandlers, type RepositoryServiceDeps } from './service.js';
import { Repository } from './store.js';

/** Where the repository lives and where it listens. */
export interface RepositoryServerOptions {
  /** The repository directory; created (with repo.json) when it does not exist. */
  dir: string;
  /** host:port; port 0 picks a free one. */
  listen: string;
  log: Logger;
  /** Chunk size of a new repository (default 4 MiB). */
  chunkSize?: number;
  /** Mutual TLS (callers need an agent or coordinator certificate) or plaintext; default plaintext. */
  transport?: Transport;
}

/** A running repository server. */
export interface RepositoryServer {
  server: Server;
  /** The bound address, host:port. */
  addr: string;
  repo: Repository;
  /** Lets open calls finish for up to `graceMs` (default 3 s), then cuts them. */
  stop(graceMs?: number): Promise<void>;
}

/** Mounts the Repository service on an existing server (which should allow REPOSITORY_MAX_MESSAGE_BYTES messages). */
export function addRepositoryService(server: Server, deps: RepositoryServiceDeps, transport: Transport = INSECURE): void {
  // Only the fleet's agents and coordinator may read or write backups.
  const handlers = guardHandlers(repositoryHandlers(deps), (call) => void requirePeer(call, transport, ['agent', 'coordinator'], 'repository'));
  server.addService(loadRepositoryProto().doppel.v1.Repository.service, handlers);
}

/**
 * Opens (or creates) the repository at `dir` and serves it on `listen` with
 * 8 MiB messages and raised HTTP/2 windows; resolves once it is listening.
 */
export async function startRepositoryServer(opts: RepositoryServerOptions): Promise<RepositoryServer> {
  const { log } = opts;
  const repo = await Repository.open({ dir: opts.dir, log, ...(opts.chunkSize !== undefined ? { chunkSize: opts.chunkSize } : {}) });
  const server = new Server({
    'grpc.max_receive_message_length': REPOSITORY_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': REPOSITORY_MAX_MESSAGE_BYTES,
  });
  const transport = opts.transport ?? INSECURE;
  addRepositoryService(server, { repo, log }, transport);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(opts.listen, serverCredentials(transport), (err, p) => (err ? reject(err) : resolve(p)));
  });
  // Chunks flow client -> server; with grpc-js's 64 KiB default window the upload would be window-bound.
  if (!raiseServerWindows(server)) log.warn('could not raise HTTP/2 windows (grpc-js internals changed); uploads will be slower');
  const host = opts.listen.slice(0, opts.listen.lastIndexOf(':'));
  const addr = `${host}:${port}`;
  log.info({ dir: repo.dir, addr, chunkSize: repo.chunkSize }, 'repository listening');
  return { server, addr, repo, stop: (graceMs?: number) => shutdownServer(server, graceMs) };
}
