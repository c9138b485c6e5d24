/**
 * Raises the HTTP/2 flow-control windows of a grpc-js server.
 *
 * grpc-js lets a client set its receive window ('grpc-node.flow_control_window')
 * but has no such option for a server, and the page stream flows client ->
 * server. With the 64 KiB default the stream is window-bound: we measured about
 * 110 MB/s of wire bytes between two processes on loopback, both sides mostly
 * idle, against 1.1-1.5 GB/s for plain Node HTTP/2 with 8 MiB windows.
 *
 * grpc-js keeps its http2 servers in a private map; this reaches into it in one
 * place, checks the shape, and degrades to the defaults with a warning if a
 * future grpc-js changes it (see docs/decisions.md).
 */
import type { Server } from '@grpc/grpc-js';
import type { Http2Server, Http2Session } from 'node:http2';

export const DATA_PLANE_WINDOW_BYTES = 16 * 1024 * 1024;

/** Returns false when grpc-js internals did not look as expected (nothing changed then). */
export function raiseServerWindows(server: Server, bytes: number = DATA_PLANE_WINDOW_BYTES): boolean {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(servers instanceof Map)) return false;
  let tuned = false;
  for (const h2 of servers.keys() as IterableIterator<Http2Server>) {
    if (typeof h2?.updateSettings !== 'function') continue;
    h2.updateSettings({ initialWindowSize: bytes });
    h2.on('session', (session: Http2Session) => {
      try {
        session.setLocalWindowSize(bytes);
      } catch {
        // a session that is already closing
      }
    });
    tuned = true;
  }
  return tuned;
}

/** Waits for open calls to end, but not forever: after `graceMs` the remaining ones are cut. */
export async function shutdownServer(server: Server, graceMs = 3_000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}
