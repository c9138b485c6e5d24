/**
 * The simulated storage array as an HTTP server: a REST/JSON management API and a raw block data path,
 * the way real arrays expose theirs. Plain HTTP: it stands in for an array on a storage network.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidArgumentError, requireName, silentLogger, type Logger } from '../../shared/src/mod.js';
import type { ArrayFaults } from '../../shared/src/array/mod.js';
import { BearerCheck } from './http.js';
import { arrayHandler } from './routes.js';
import { ArrayStore } from './store.js';

export interface ArrayServerOptions {
  /** Where volumes, snapshots and state.json live; created when missing, reopened as it was. */
  dir: string;
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** The array's name in messages and GET /v1/array (default: the stored one, or 'array'). */
  name?: string;
  /** When set, every route needs `Authorization: Bearer TOKEN` (401 otherwise). */
  token?: string;
  /** Start with snapshots refused (409 FailedPreconditionError); see setFaults. */
  refuseSnapshots?: boolean;
  /** The process's logger; the array logs to a child {component: 'array'} (default: silent). */
  log?: Logger;
}

export interface ArrayServer {
  /** http://host:port, the bound address. */
  url: string;
  store: ArrayStore;
  /** Changes the injected faults; unset fields keep their value. */
  setFaults(faults: Partial<ArrayFaults>): void;
  faults(): ArrayFaults;
  /** Stops listening, cuts open connections, waits for operations under way and closes the files. */
  close(): Promise<void>;
}

function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  const portText = listen.slice(i + 1);
  const port = Number(portText);
  if (i <= 0 || !/^\d{1,5}$/.test(portText) || port > 65535) throw new InvalidArgumentError(`listen address must be HOST:PORT (got ${JSON.stringify(listen)})`);
  return { host, port };
}

export async function startArrayServer(opts: ArrayServerOptions): Promise<ArrayServer> {
  const { host, port } = splitListen(opts.listen);
  if (opts.name !== undefined) requireName('array name', opts.name);
  if (opts.token !== undefined && opts.token.length < 16) throw new InvalidArgumentError('the array token must have at least 16 characters');
  const log = (opts.log ?? silentLogger()).child({ component: 'array' });
  const store = await ArrayStore.open({ dir: opts.dir, log, ...(opts.name !== undefined ? { name: opts.name } : {}) });
  const faults: ArrayFaults = { refuseSnapshots: opts.refuseSnapshots === true, unavailable: false };
  const server = http.createServer(arrayHandler({ store, faults, token: opts.token !== undefined ? new BearerCheck(opts.token) : undefined, log }));
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await store.close();
    throw err;
  }
  server.on('error', (err) => log.error({ err }, 'array server error'));
  // Not HTTP, or headers over the limit: answer 400 when the socket still takes it, then cut it.
  server.on('clientError', (err: Error & { code?: string }, socket) => {
    log.debug({ err: err.message, code: err.code }, 'malformed request');
    if (socket.writable && err.code !== 'ECONNRESET') {
      const body = JSON.stringify({ error: { name: 'InvalidArgumentError', code: 'INVALID_ARGUMENT', message: `malformed HTTP request: ${err.message}` } });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy();
  });
  const bound = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ url, dir: store.dir, array: store.name, token: opts.token !== undefined, faults }, 'storage array listening');
  let closing: Promise<void> | undefined;
  return {
    url,
    store,
    setFaults(f) {
      if (f.refuseSnapshots !== undefined) faults.refuseSnapshots = f.refuseSnapshots;
      if (f.unavailable !== undefined) faults.unavailable = f.unavailable;
      log.warn({ faults }, 'faults set');
    },
    faults: () => ({ ...faults }),
    close() {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeAllConnections();
        await stopped;
        await store.close();
        log.info({ url }, 'storage array stopped');
      })();
      return closing;
    },
  };
}
