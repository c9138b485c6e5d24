/**
 * Who is on the other end of a server call: the fleet identity in the client's
 * certificate (CN = name, OU = role, SAN IPs), and whether it calls from an
 * address its certificate names. Used by every server that authorizes callers.
 */
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import type { Transport } from './tls.js';
import { PermissionDeniedError, UnauthenticatedError } from '../errors.js';

export const CERT_ROLES = ['agent', 'coordinator', 'repository', 'admin', 'reader'] as const;
export type CertRole = (typeof CERT_ROLES)[number];

export interface PeerIdentity {
  name: string;
  role: CertRole | '';
  /** IP addresses in the certificate's SAN; when there are any, the peer must call from one of them. */
  ips: string[];
  /** The address the call came from. */
  address: string;
}

/** The parts of a grpc-js server call we need (every call type has both). */
export interface CallWithPeer {
  getPeer(): string;
  getAuthContext(): { sslPeerCertificate?: PeerCertificate };
}

function field(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

/** One spelling per address: IPv4-mapped IPv6 as IPv4, IPv6 compressed (certificates spell it in full). */
function normalizeIp(ip: string): string {
  const bare = ip.replace(/^\[|\]$/g, '');
  if (bare.toLowerCase().startsWith('::ffff:') && isIP(bare.slice(7)) === 4) return bare.slice(7);
  if (isIP(bare) === 6) return new URL(`http://[${bare}]/`).hostname.replace(/^\[|\]$/g, '');
  return bare;
}

/** "10.0.0.2:5000", "[::1]:5000", "ipv4:10.0.0.2:5000" -> the IP. */
export function peerAddress(peer: string): string {
  const s = peer.replace(/^ipv[46]:/, '');
  const m = /^\[([^\]]+)\]:\d+$/.exec(s) ?? /^(.*):\d+$/.exec(s);
  return normalizeIp(m?.[1] ?? s);
}

export function sanIps(subjectaltname: string | undefined): string[] {
  return (subjectaltname ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.startsWith('IP Address:'))
    .map((s) => normalizeIp(s.slice('IP Address:'.length)));
}

/** The verified client certificate of a call, or null when it has none (plaintext, or optional and absent). */
export function peerIdentity(call: CallWithPeer): PeerIdentity | null {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert) return null;
  const ou = field(cert.subject.OU);
  return {
    name: field(cert.subject.CN),
    role: (CERT_ROLES as readonly string[]).includes(ou) ? (ou as CertRole) : '',
    ips: sanIps(cert.subjectaltname),
    address: peerAddress(call.getPeer()),
  };
}

/**
 * Authorizes a call on a mutual-TLS server: the client certificate's role must be one of `roles`,
 * and a certificate that names IP addresses only works from them (a stolen host certificate
 * is no use from another host). Returns null on a plaintext transport, where nothing is known.
 */
export function requirePeer(call: CallWithPeer, transport: Transport, roles: readonly CertRole[], what: string): PeerIdentity | null {
  if (transport.kind === 'insecure') return null;
  const peer = peerIdentity(call);
  if (!peer) throw new UnauthenticatedError(`${what}: no client certificate`);
  checkPeer(peer, roles, what);
  return peer;
}

export function checkPeer(peer: PeerIdentity, roles: readonly CertRole[], what: string): void {
  if (!peer.role || !roles.includes(peer.role)) {
    throw new PermissionDeniedError(`${what}: certificate '${peer.name}' has role '${peer.role || 'none'}', needs ${roles.join(' or ')}`);
  }
  if (peer.ips.length > 0 && !peer.ips.includes(peer.address)) {
    throw new PermissionDeniedError(
      `${what}: certificate '${peer.name}' is for ${peer.ips.join(', ')} but the call comes from ${peer.address}`,
    );
  }
}
