/**
 * The data plane's door: every stream is authorized before its first frame is
 * read. Under mutual TLS the caller must hold an agent certificate (used from
 * its own address); always, it must carry a coordinator-signed stream token for
 * this host, this direction and, once the stream names them, this job and VM.
 */
import type { Metadata } from '@grpc/grpc-js';
import {
  PermissionDeniedError,
  STREAM_TOKEN_METADATA,
  checkTokenBinding,
  requirePeer,
  type CallWithPeer,
  type StreamDirection,
  type StreamTokenClaims,
  type StreamTokenVerifier,
  type Transport,
} from '../../../shared/src/mod.js';

export class StreamGuard {
  constructor(
    private readonly transport: Transport,
    private readonly verifier: StreamTokenVerifier,
  ) {}

  /** Checks the caller and spends its token; throws PERMISSION_DENIED / UNAUTHENTICATED. */
  admit(call: CallWithPeer & { metadata: Metadata }, dirs: readonly StreamDirection[]): StreamTokenClaims {
    const peer = requirePeer(call, this.transport, ['agent'], 'data plane');
    const token = call.metadata.get(STREAM_TOKEN_METADATA)[0];
    return this.verifier.accept(typeof token === 'string' ? token : undefined, dirs, peer?.name ?? null);
  }
}

/** The stream's own opening must match what its token was signed for. */
export function bindStream(c: StreamTokenClaims, open: { jobId: string; targetVmId: string; probe?: boolean }): void {
  if (open.probe) {
    if (c.dir !== 'probe') throw new PermissionDeniedError(`a ${c.dir} stream token cannot open a link probe`);
    return;
  }
  if (c.dir === 'probe') throw new PermissionDeniedError('a probe token cannot open a clone stream');
  checkTokenBinding(c, open.jobId, open.targetVmId);
}
