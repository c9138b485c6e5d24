/**
 * Puts a check in front of every handler of a gRPC service: a call that fails
 * it gets the error's status before its handler runs, so it is served nothing.
 */
import type { Metadata } from '@grpc/grpc-js';
import { toServiceError } from '../grpc/status.js';
import type { CallWithPeer } from './peer.js';

export type CallCheck = (call: CallWithPeer & { metadata: Metadata }, method: string) => void;

type AnyCall = CallWithPeer & { metadata: Metadata; emit(event: 'error', err: Error): boolean };
type AnyHandler = (call: AnyCall, callback?: (err: Error) => void) => void;

export function guardHandlers<H extends object>(handlers: H, check: CallCheck): H {
  const out: Record<string, AnyHandler> = {};
  for (const [method, fn] of Object.entries(handlers) as [string, AnyHandler][]) {
    out[method] = (call, callback) => {
      try {
        check(call, method);
      } catch (err) {
        // Unary and client-streaming calls answer through their callback; server streams through 'error'.
        if (typeof callback === 'function') return callback(toServiceError(err));
        return void call.emit('error', toServiceError(err));
      }
      return fn(call, callback);
    };
  }
  return out as H;
}
