/**
 * The command line's security options, read the same way by every daemon and
 * client: which PKI directory and certificate, plaintext only when asked, the
 * stream-token key, NATS credentials and API tokens.
 */
import { existsSync, readFileSync } from 'node:fs';
import {
  InvalidArgumentError,
  NotFoundError,
  StreamTokenSigner,
  StreamTokenVerifier,
  defaultPkiDir,
  loadTlsIdentity,
  pkiFiles,
  resolveTransport,
  type Logger,
  type NatsAuth,
  type Transport,
} from '../../shared/src/mod.js';
import type { ClientSecurity } from './client.js';
import { flag, str, type Options, type Parsed } from './args.js';

export const DAEMON_SECURITY_OPTIONS: Options = {
  pki: { type: 'string' },
  'cert-name': { type: 'string' },
  insecure: { type: 'boolean' },
  'stream-token-key': { type: 'string' },
  'nats-creds': { type: 'string' },
};

export const DAEMON_SECURITY_HELP = `Security (mutual TLS is required unless --insecure):
  --pki DIR              fleet PKI directory: ca.pem, NAME.pem, NAME.key, stream-token.* (env DOPPEL_PKI;
                         made by 'doppel certs init' and 'doppel certs issue')
  --cert-name NAME       which certificate of DIR this process presents (env DOPPEL_CERT_NAME)
  --insecure             plaintext gRPC on a trusted network (logged as a warning)
  --stream-token-key F   stream-token key (agents: public, coordinator: private; default DIR/stream-token.pub|key,
                         env DOPPEL_STREAM_TOKEN_KEY)
  --nats-creds FILE      NATS user and password, JSON {"user","password"} (env DOPPEL_NATS_CREDS; 'doppel nats-auth')`;

export function pkiDir(p: Parsed): string {
  return str(p, 'pki', process.env.DOPPEL_PKI ?? '');
}

/** A daemon's transport: mutual TLS from --pki, or plaintext with --insecure (and a warning). */
export function daemonTransport(p: Parsed, what: string, defaultCertName: string, log: Logger): Transport {
  const t = resolveTransport({
    pkiDir: pkiDir(p),
    certName: str(p, 'cert-name', process.env.DOPPEL_CERT_NAME ?? defaultCertName),
    insecure: flag(p, 'insecure') || process.env.DOPPEL_INSECURE === '1',
    what,
  });
  if (t.kind === 'insecure') {
    log.warn(`${what}: plaintext gRPC (--insecure): anyone on the network can read and inject data; stream tokens are checked but not tied to a certificate`);
  }
  return t;
}

function tokenKeyFile(p: Parsed, which: 'tokenPub' | 'tokenKey', what: string): string {
  const explicit = str(p, 'stream-token-key', process.env.DOPPEL_STREAM_TOKEN_KEY ?? '');
  if (explicit) return explicit;
  const dir = pkiDir(p);
  if (dir) return pkiFiles(dir, 'x')[which];
  throw new InvalidArgumentError(`${what} needs the stream-token key: --stream-token-key FILE or --pki DIR (made by 'doppel certs init')`);
}

export function agentTokenVerifier(p: Parsed, host: string): StreamTokenVerifier {
  return StreamTokenVerifier.fromFile(tokenKeyFile(p, 'tokenPub', 'the agent'), host);
}

export function coordinatorTokenSigner(p: Parsed): StreamTokenSigner {
  return StreamTokenSigner.fromFile(tokenKeyFile(p, 'tokenKey', 'the coordinator'));
}

/**
 * NATS credentials from --nats-creds (JSON {"user","password"}), and TLS to NATS when the URL says tls://.
 * A daemon under mutual TLS must have credentials: an anonymous NATS connection would have every right.
 */
export function natsAuth(p: Parsed, natsUrl: string, transport: Transport, log: Logger): NatsAuth {
  const file = str(p, 'nats-creds', process.env.DOPPEL_NATS_CREDS ?? '');
  const certName = transport.kind === 'tls' ? transport.identity.name : '';
  if (transport.kind === 'tls' && !file) {
    throw new InvalidArgumentError(`NATS credentials are required with --pki: give --nats-creds FILE (made by 'doppel nats-auth'), or run with --insecure`);
  }
  if (file && natsUrl.split(',').some((u) => !u.startsWith('tls://'))) {
    log.warn(`NATS at ${natsUrl} is not tls://: the NATS password and all fleet messages cross the network in the clear`);
  }
  const auth: NatsAuth = {};
  if (file) {
    let v: { user?: unknown; password?: unknown };
    try {
      v = JSON.parse(readFileSync(file, 'utf8')) as typeof v;
    } catch (err) {
      throw new InvalidArgumentError(`cannot read NATS credentials ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (typeof v.user !== 'string' || typeof v.password !== 'string') throw new InvalidArgumentError(`${file}: expected {"user": "...", "password": "..."}`);
    auth.user = v.user;
    auth.password = v.password;
  }
  const dir = pkiDir(p);
  if (dir && certName && natsUrl.split(',').some((u) => u.startsWith('tls://'))) {
    const f = pkiFiles(dir, certName);
    auth.tls = { caFile: f.ca, ...(existsSync(f.cert) ? { certFile: f.cert, keyFile: f.key } : {}) };
  }
  return auth;
}

export const CLIENT_SECURITY_OPTIONS: Options = {
  pki: { type: 'string' },
  'cert-name': { type: 'string' },
  token: { type: 'string' },
  insecure: { type: 'boolean' },
};

export const CLIENT_SECURITY_HELP = `  --pki DIR            fleet PKI directory: TLS to the coordinator (env DOPPEL_PKI; default
                       /etc/doppel/pki or ~/.config/doppel/pki when it holds a ca.pem)
  --cert-name NAME     client certificate in DIR, role admin or reader (env DOPPEL_CERT_NAME)
  --token TOKEN        API bearer token (env DOPPEL_TOKEN)
  --insecure           plaintext to a coordinator on another machine (a local one, 'doppel up', needs no flag)`;

function isLoopback(addr: string): boolean {
  const host = addr.slice(0, addr.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/**
 * How a client command reaches the coordinator at `addr`: TLS with a client certificate, TLS and a
 * token, or plaintext, which only a coordinator on this machine gets without --insecure.
 */
export function clientSecurity(p: Parsed, addr: string): ClientSecurity {
  const token = str(p, 'token', process.env.DOPPEL_TOKEN ?? '');
  const fallback = defaultPkiDir();
  const dir = pkiDir(p) || (existsSync(pkiFiles(fallback, 'x').ca) ? fallback : '');
  if (!dir) {
    if (!isLoopback(addr)) {
      if (!flag(p, 'insecure')) {
        throw new InvalidArgumentError(`the coordinator at ${addr} is on another machine: give --pki DIR for TLS, or --insecure for plaintext`);
      }
      console.error(`doppel: warning: plaintext to ${addr}${token ? ': the bearer token crosses the network in the clear' : ''}`);
    }
    return { token };
  }
  const name = str(p, 'cert-name', process.env.DOPPEL_CERT_NAME ?? '');
  const f = pkiFiles(dir, name || 'x');
  if (name && existsSync(f.cert)) return { token, identity: loadTlsIdentity(dir, name) };
  if (name) throw new NotFoundError(`no certificate ${f.cert} ('doppel certs issue ${name} --role admin|reader')`);
  try {
    return { token, ca: readFileSync(f.ca) };
  } catch (err) {
    throw new NotFoundError(`cannot read the fleet CA ${f.ca}: ${(err as Error).message}`, { cause: err });
  }
}
