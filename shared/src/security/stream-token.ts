/**
 * Scoped data-plane stream tokens. The coordinator signs one token per stream
 * (Ed25519); the receiving agent checks it before it reads a byte: signature,
 * expiry, its own host as destination, the direction, the sender's certificate
 * as source, single use, and, once the stream says which clone it feeds, the
 * job and the VM.
 *
 * Format: base64url(JSON claims) "." base64url(signature over the first part).
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Metadata } from '@grpc/grpc-js';
import { InvalidArgumentError, NotFoundError, PermissionDeniedError, ResourceExhaustedError } from '../errors.js';

/** gRPC metadata key that carries the token. */
export const STREAM_TOKEN_METADATA = 'doppel-stream-token';

export type StreamDirection = 'pages' | 'disk' | 'verify' | 'probe';

export interface StreamTokenClaims {
  job: string;
  vm: string;
  /** Sending host (must match the sender's certificate name under TLS). */
  src: string;
  /** Receiving host. */
  dst: string;
  dir: StreamDirection;
  /** Expiry, ms since the epoch: the stream must start before it. */
  exp: number;
  /** Single use. */
  nonce: string;
}

/** A stream must start within this long of its token's issue. Generous: a disk stream starts after the pre-copy. */
export const STREAM_TOKEN_TTL_MS = 30 * 60_000;

const MAX_REPLAY_ENTRIES = 100_000;

function b64(buf: Buffer): string {
  return buf.toString('base64url');
}

export class StreamTokenSigner {
  constructor(private readonly key: KeyObject) {
    if (key.asymmetricKeyType !== 'ed25519') throw new InvalidArgumentError('the stream-token key must be an Ed25519 private key');
  }

  /** A fresh key pair, for a local fleet; production keys come from `doppel certs init`. */
  static generate(): { signer: StreamTokenSigner; publicKeyPem: string; privateKeyPem: string } {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    return {
      signer: new StreamTokenSigner(privateKey),
      publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    };
  }

  static fromFile(file: string): StreamTokenSigner {
    return new StreamTokenSigner(createPrivateKey(readKey(file, 'stream-token private key')));
  }

  sign(claims: Omit<StreamTokenClaims, 'exp' | 'nonce'>, ttlMs = STREAM_TOKEN_TTL_MS): string {
    const full: StreamTokenClaims = { ...claims, exp: Date.now() + ttlMs, nonce: b64(randomBytes(16)) };
    const body = b64(Buffer.from(JSON.stringify(full)));
    return `${body}.${b64(sign(null, Buffer.from(body), this.key))}`;
  }
}

function readKey(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new NotFoundError(`cannot read the ${what} ${file}: ${(err as Error).message} (made by 'doppel certs init')`, { cause: err });
  }
}

export class StreamTokenVerifier {
  /** nonce -> expiry; entries leave once expired. */
  private readonly used = new Map<string, number>();

  constructor(
    private readonly key: KeyObject,
    /** This agent's host name: every token must name it as destination. */
    private readonly host: string,
  ) {
    if (key.asymmetricKeyType !== 'ed25519') throw new InvalidArgumentError('the stream-token key must be an Ed25519 public key');
  }

  static fromPem(pem: string | Buffer, host: string): StreamTokenVerifier {
    return new StreamTokenVerifier(createPublicKey(pem), host);
  }

  static fromFile(file: string, host: string): StreamTokenVerifier {
    return StreamTokenVerifier.fromPem(readKey(file, 'stream-token public key'), host);
  }

  /**
   * Checks a token at the start of a stream and spends it. `src` is the sender's certificate
   * name (null on plaintext, where the token's source cannot be checked).
   */
  accept(token: string | undefined, dirs: readonly StreamDirection[], src: string | null): StreamTokenClaims {
    const dir = dirs.join('/');
    if (!token) throw new PermissionDeniedError(`${dir} stream without a stream token`);
    const [body, sig, extra] = token.split('.');
    if (!body || !sig || extra !== undefined) throw new PermissionDeniedError(`${dir} stream: malformed stream token`);
    if (!verify(null, Buffer.from(body), this.key, Buffer.from(sig, 'base64url'))) {
      throw new PermissionDeniedError(`${dir} stream: stream token signature does not verify`);
    }
    let c: StreamTokenClaims;
    try {
      c = JSON.parse(Buffer.from(body, 'base64url').toString()) as StreamTokenClaims;
    } catch (err) {
      throw new PermissionDeniedError(`${dir} stream: unreadable stream token`, { cause: err });
    }
    const fields = c as unknown as Record<string, unknown> | null;
    if (typeof fields !== 'object' || fields === null || !['job', 'vm', 'src', 'dst', 'dir', 'nonce'].every((k) => typeof fields[k] === 'string')) {
      throw new PermissionDeniedError(`${dir} stream: stream token with missing or mistyped claims`);
    }
    const now = Date.now();
    if (typeof c.exp !== 'number' || c.exp <= now) throw new PermissionDeniedError(`${dir} stream: stream token of job ${c.job} expired`);
    if (c.dst !== this.host) throw new PermissionDeniedError(`${dir} stream: stream token is for host '${c.dst}', this is '${this.host}'`);
    if (!dirs.includes(c.dir)) throw new PermissionDeniedError(`${dir} stream: stream token is for a ${c.dir} stream`);
    if (src !== null && c.src !== src) {
      throw new PermissionDeniedError(`${dir} stream: stream token is for a stream from '${c.src}', the caller is '${src}'`);
    }
    this.spend(c.nonce, c.exp, now, c.job);
    return c;
  }

  private spend(nonce: string, exp: number, now: number, job: string): void {
    if (typeof nonce !== 'string' || nonce.length < 16) throw new PermissionDeniedError('stream token without a nonce');
    if (this.used.has(nonce)) throw new PermissionDeniedError(`stream token of job ${job} was already used (replay)`);
    if (this.used.size >= MAX_REPLAY_ENTRIES) {
      for (const [n, e] of this.used) if (e <= now) this.used.delete(n);
      if (this.used.size >= MAX_REPLAY_ENTRIES) throw new ResourceExhaustedError('too many live stream tokens; try again later');
    }
    this.used.set(nonce, exp);
  }
}

/** Call metadata carrying a stream token. */
export function streamTokenMetadata(token: string): Metadata {
  const md = new Metadata();
  md.set(STREAM_TOKEN_METADATA, token);
  return md;
}

/** Once the stream says which job and clone it is for: they must be the token's. */
export function checkTokenBinding(c: StreamTokenClaims, job: string, vm: string): void {
  if (c.job !== job) throw new PermissionDeniedError(`stream token is for job ${c.job}, the stream is for job ${job}`);
  if (c.vm !== vm) throw new PermissionDeniedError(`stream token is for VM ${c.vm}, the stream is for VM ${vm}`);
}
