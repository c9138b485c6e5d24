/**
 * Who may call the coordinator's API. Two roles: `reader` (lists, shows,
 * watches, verifies) and `admin` (everything that changes the fleet: create,
 * run, destroy, clone, cancel a job, back up, restore). A caller proves its role with a client
 * certificate of the fleet CA whose OU is the role, or with a bearer token from
 * the tokens file. Open (no checks) only for a local fleet or `--insecure`
 * without a tokens file.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import type http from 'node:http';
import type { Metadata } from '@grpc/grpc-js';
import {
  InvalidArgumentError,
  NotFoundError,
  PermissionDeniedError,
  UnauthenticatedError,
  checkPeer,
  peerIdentity,
  type CallWithPeer,
  type PeerIdentity,
} from '../../../shared/src/mod.js';

export type ApiRole = 'reader' | 'admin';

/** What each API call needs. Anything not listed here needs admin. */
const READ_CALLS = new Set([
  'ListHosts',
  'ListVMs',
  'GetVMStorage',
  'GetJob',
  'ListJobs',
  'WatchEvents',
  'ListBackups',
  'GetBackup',
  'VerifyBackup',
  'ListSnapshots',
  'GetSnapshot',
  'CheckSnapshots',
  'GetCluster',
  'ListClusters',
  'PlanRestore',
]);

export function neededRole(call: string): ApiRole {
  return READ_CALLS.has(call) ? 'reader' : 'admin';
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

export class ApiAuth {
  private constructor(
    /** false: every caller is admin (local fleet, or --insecure without tokens). */
    readonly enforced: boolean,
    private readonly tokens: { role: ApiRole; digest: Buffer }[],
  ) {}

  static open(): ApiAuth {
    return new ApiAuth(false, []);
  }

  static withTokens(tokens: { role: ApiRole; token: string }[]): ApiAuth {
    return new ApiAuth(true, tokens.map((t) => ({ role: t.role, digest: digest(t.token) })));
  }

  /** Lines `ROLE TOKEN` (ROLE admin or reader), `#` comments; tokens of at least 16 characters. */
  static fromFile(file: string): ApiAuth {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new NotFoundError(`cannot read the API tokens file ${file}: ${(err as Error).message}`, { cause: err });
    }
    const tokens: { role: ApiRole; token: string }[] = [];
    text.split('\n').forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const [role, token, extra] = line.split(/\s+/);
      if ((role !== 'admin' && role !== 'reader') || !token || extra !== undefined) {
        throw new InvalidArgumentError(`${file}:${i + 1}: expected 'admin TOKEN' or 'reader TOKEN'`);
      }
      if (token.length < 16) throw new InvalidArgumentError(`${file}:${i + 1}: a token must have at least 16 characters`);
      tokens.push({ role, token });
    });
    return ApiAuth.withTokens(tokens);
  }

  private roleOfToken(token: string): ApiRole | undefined {
    const d = digest(token);
    let found: ApiRole | undefined;
    for (const t of this.tokens) if (timingSafeEqual(t.digest, d)) found ??= t.role;
    return found;
  }

  /** The caller's role from a client certificate or a bearer token; throws when it has neither. */
  private roleOf(peer: PeerIdentity | null, authorization: string | undefined): ApiRole {
    if (peer) {
      if (peer.role === 'admin' || peer.role === 'coordinator') {
        checkPeer(peer, [peer.role], 'API');
        return 'admin';
      }
      if (peer.role === 'reader') {
        checkPeer(peer, ['reader'], 'API');
        return 'reader';
      }
    }
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (m?.[1]) {
      const role = this.roleOfToken(m[1]);
      if (!role) throw new UnauthenticatedError('API: unknown bearer token');
      return role;
    }
    if (peer) throw new PermissionDeniedError(`API: certificate '${peer.name}' (role '${peer.role || 'none'}') may not use the API; use an admin or reader certificate or a bearer token`);
    throw new UnauthenticatedError('API: authentication required: a client certificate (role admin or reader) or a bearer token');
  }

  private check(role: ApiRole, call: string): void {
    if (neededRole(call) === 'admin' && role !== 'admin') throw new PermissionDeniedError(`API: ${call} needs the admin role; this caller is a reader`);
  }

  /** Authorizes one gRPC call by its method name. */
  authorizeGrpc(call: CallWithPeer & { metadata: Metadata }, method: string): void {
    if (!this.enforced) return;
    const auth = call.metadata.get('authorization')[0];
    this.check(this.roleOf(peerIdentity(call), typeof auth === 'string' ? auth : undefined), method);
  }

  /** Authorizes one HTTP request, given the gRPC method it stands for. */
  authorizeHttp(req: http.IncomingMessage, method: string): void {
    if (!this.enforced) return;
    this.check(this.roleOf(httpPeer(req), req.headers.authorization), method);
  }
}

/** The verified client certificate of an HTTPS request, as a peer identity. */
function httpPeer(req: http.IncomingMessage): PeerIdentity | null {
  const sock = req.socket as Partial<TLSSocket>;
  if (!sock.authorized || typeof sock.getPeerCertificate !== 'function') return null;
  const cert = sock.getPeerCertificate();
  if (!cert?.subject) return null;
  return peerIdentity({
    getPeer: () => `[${req.socket.remoteAddress ?? ''}]:0`,
    getAuthContext: () => ({ sslPeerCertificate: cert }),
  });
}
