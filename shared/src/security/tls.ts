/**
 * Transport security for every gRPC server and client of doppel, in one place.
 *
 * A process has a `Transport`: mutual TLS with a fleet identity (the CA, its
 * certificate and key from a PKI directory, see `doppel certs`), or plaintext,
 * which only `doppel up`, `demo` and an explicit `--insecure` choose.
 *
 * Clients verify the server by its fleet *name*, not by the address they dial:
 * a certificate's SAN carries `DNS:NAME` (the host or service name), and the
 * channel overrides the TLS target name with the name it expects. Addresses may
 * change; the identity an agent streams a VM's memory to may not.
 */
import { readFileSync } from 'node:fs';
import { ServerCredentials, credentials, experimental, type ChannelCredentials, type ChannelOptions, type VerifyOptions } from '@grpc/grpc-js';
import type { CertRole } from './peer.js';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { pkiFiles } from './pki.js';

export interface TlsIdentity {
  /** The certificate name (CN and SAN DNS) this process presents. */
  name: string;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
}

export type Transport = { kind: 'tls'; identity: TlsIdentity } | { kind: 'insecure' };

export const INSECURE: Transport = { kind: 'insecure' };

/** The certificate the coordinator's API presents. */
export const COORDINATOR_SERVER: ExpectedServer = { name: 'coordinator', role: 'coordinator' };

function readPkiFile(file: string, what: string, hint: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError(`${what} ${file} does not exist (${hint})`, { cause: err });
    throw new InvalidArgumentError(`cannot read ${what} ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Loads `ca.pem`, `NAME.pem` and `NAME.key` from a PKI directory, with errors that say how to make them. */
export function loadTlsIdentity(dir: string, name: string): TlsIdentity {
  const p = pkiFiles(dir, name);
  return {
    name,
    ca: readPkiFile(p.ca, 'the fleet CA certificate', `run 'doppel certs init --dir ${dir}' on the admin machine and copy ca.pem`),
    cert: readPkiFile(p.cert, `the certificate of '${name}'`, `run 'doppel certs issue ${name} --role ROLE --dir ${dir}'`),
    key: readPkiFile(p.key, `the private key of '${name}'`, `run 'doppel certs issue ${name} --role ROLE --dir ${dir}'`),
  };
}

/**
 * How a daemon secures its gRPC: `--pki DIR` gives mutual TLS; otherwise only an explicit
 * `--insecure` (or a local fleet) gives plaintext. Neither is an error that says what to do.
 */
export function resolveTransport(opts: { pkiDir: string; certName: string; insecure: boolean; what: string }): Transport {
  if (opts.pkiDir) {
    if (opts.insecure) throw new InvalidArgumentError(`${opts.what}: --pki and --insecure exclude each other`);
    return { kind: 'tls', identity: loadTlsIdentity(opts.pkiDir, opts.certName) };
  }
  if (opts.insecure) return INSECURE;
  throw new InvalidArgumentError(
    `${opts.what}: mutual TLS is required: give --pki DIR (made by 'doppel certs init' and 'doppel certs issue'), ` +
      `or --insecure to run with plaintext gRPC on a trusted network`,
  );
}

/**
 * Server credentials. With TLS the client must present a certificate of the fleet CA, unless
 * `clientCertOptional` (the coordinator's API, which also takes bearer tokens).
 */
export function serverCredentials(t: Transport, opts: { clientCertOptional?: boolean } = {}): ServerCredentials {
  if (t.kind === 'insecure') return ServerCredentials.createInsecure();
  const pair = [{ private_key: t.identity.key, cert_chain: t.identity.cert }];
  if (!opts.clientCertOptional) return ServerCredentials.createSsl(t.identity.ca, pair, true);
  return createOptionalClientCertCredentials(t.identity);
}

/** The server a client expects: its fleet name (certificate CN and SAN) and the role in its certificate. */
export interface ExpectedServer {
  name: string;
  role: CertRole;
}

/**
 * Checks the server's certificate beyond the CA: its CN must be the expected fleet name and its OU the
 * expected role, so no other fleet certificate (an agent's, an operator's) can pose as this server.
 */
function verifyServer(server: ExpectedServer): VerifyOptions {
  return {
    checkServerIdentity: (_host, cert) => {
      const field = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v) ?? '';
      const cn = field(cert.subject?.CN);
      const ou = field(cert.subject?.OU);
      if (cn !== server.name || ou !== server.role) {
        return new Error(`the server presented certificate '${cn}' (role '${ou}'), expected '${server.name}' (role '${server.role}')`);
      }
      return undefined;
    },
  };
}

/**
 * Client credentials and channel options for a server known by fleet name. The TLS target name is
 * overridden with it, so the server must present a certificate for that name and role.
 */
export function channelCredentials(t: Transport, server: ExpectedServer): { creds: ChannelCredentials; options: ChannelOptions } {
  if (t.kind === 'insecure') return { creds: credentials.createInsecure(), options: {} };
  return {
    creds: credentials.createSsl(t.identity.ca, t.identity.key, t.identity.cert, verifyServer(server)),
    options: { 'grpc.ssl_target_name_override': server.name, 'grpc.default_authority': server.name },
  };
}

/** Client credentials with no client certificate (a CLI user with a bearer token only). */
export function channelCredentialsCaOnly(ca: Buffer, server: ExpectedServer): { creds: ChannelCredentials; options: ChannelOptions } {
  return {
    creds: credentials.createSsl(ca, null, null, verifyServer(server)),
    options: { 'grpc.ssl_target_name_override': server.name, 'grpc.default_authority': server.name },
  };
}

/** TLS that asks for a client certificate but lets a connection without one through (to authenticate by token). */
function createOptionalClientCertCredentials(id: TlsIdentity): ServerCredentials {
  // grpc-js registers its watcher only after adding these listeners: answer on the next tick, not at once.
  const provider: experimental.CertificateProvider = {
    addCaCertificateListener: (l) => void setImmediate(() => l({ caCertificate: id.ca })),
    removeCaCertificateListener: () => undefined,
    addIdentityCertificateListener: (l) => void setImmediate(() => l({ certificate: id.cert, privateKey: id.key })),
    removeIdentityCertificateListener: () => undefined,
  };
  return experimental.createCertificateProviderServerCredentials(provider, provider, false);
}
