/**
 * The fleet PKI: a private CA, one certificate per host or service, and the
 * Ed25519 key pair that signs data-plane stream tokens. X.509 work is done by
 * the system's `openssl` (run with execFile, never through a shell); node only
 * reads certificates and makes the Ed25519 pair.
 *
 * Layout of a PKI directory (see `doppel certs --help` for which file goes where):
 *   ca.pem, ca.key                       the fleet CA (ca.key stays on the admin machine)
 *   NAME.pem, NAME.key                   the certificate and key of host or service NAME
 *   stream-token.key, stream-token.pub   the stream-token signing pair
 */
import { execFile } from 'node:child_process';
import { X509Certificate, generateKeyPairSync, randomBytes } from 'node:crypto';
import { access, chmod, mkdir, mkdtemp, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { AlreadyExistsError, FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { isValidName } from '../protocol/subjects.js';
import { CERT_ROLES, type CertRole } from './peer.js';

export { CERT_ROLES, type CertRole };

export const CA_DAYS = 3650;
export const CERT_DAYS = 825;
const MAX_DAYS = 36500;
export const CA_COMMON_NAME = 'doppel fleet CA';
/** File names in a PKI directory that are not certificate names. */
const RESERVED_NAMES = new Set(['ca', 'stream-token']);

export interface PkiFiles {
  ca: string;
  caKey: string;
  cert: string;
  key: string;
  tokenKey: string;
  tokenPub: string;
}

/** The paths of a PKI directory: the CA, NAME's certificate and key, and the stream-token pair. */
export function pkiFiles(dir: string, name: string): PkiFiles {
  if (!isValidName(name)) throw new InvalidArgumentError(nameMessage(name));
  return {
    ca: path.join(dir, 'ca.pem'),
    caKey: path.join(dir, 'ca.key'),
    cert: path.join(dir, `${name}.pem`),
    key: path.join(dir, `${name}.key`),
    tokenKey: path.join(dir, 'stream-token.key'),
    tokenPub: path.join(dir, 'stream-token.pub'),
  };
}

/** The PKI directory when none is given: $DOPPEL_PKI, else /etc/doppel/pki for root, else ~/.config/doppel/pki. */
export function defaultPkiDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DOPPEL_PKI) return env.DOPPEL_PKI;
  if (process.getuid?.() === 0) return '/etc/doppel/pki';
  return path.join(os.homedir(), '.config', 'doppel', 'pki');
}

export function isCertRole(value: string): value is CertRole {
  return (CERT_ROLES as readonly string[]).includes(value);
}

function nameMessage(name: string): string {
  return `certificate name must be 1-63 characters of letters, digits, '-' or '_', starting with a letter or digit (got ${JSON.stringify(name)})`;
}

function checkDays(days: number | undefined, fallback: number): number {
  const d = days ?? fallback;
  if (!Number.isInteger(d) || d < 1 || d > MAX_DAYS) throw new InvalidArgumentError(`days must be a whole number from 1 to ${MAX_DAYS} (got ${d})`);
  return d;
}

const LABEL = '[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DNS_RE = new RegExp(`^(\\*\\.)?${LABEL}(\\.${LABEL})*$`);

function checkDns(name: string): string {
  if (name.length > 253 || !DNS_RE.test(name)) throw new InvalidArgumentError(`--dns must be a DNS name (got ${JSON.stringify(name)})`);
  // Fleet names have no dots: an extra name must be fully qualified, so no certificate can claim another's fleet name.
  if (!name.includes('.')) throw new InvalidArgumentError(`--dns must be a fully qualified name like ${name}.example.net (got ${JSON.stringify(name)})`);
  return name;
}

function checkIp(ip: string): string {
  if (isIP(ip) === 0) throw new InvalidArgumentError(`--ip must be an IPv4 or IPv6 address (got ${JSON.stringify(ip)})`);
  return ip;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Runs openssl with arguments (no shell), feeding `input` on stdin; returns stdout. */
function openssl(args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('openssl', args, { encoding: 'utf8', maxBuffer: 4 * 1024 * 1024, timeout: 60_000 }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return reject(new FailedPreconditionError('openssl is not installed (apt-get install openssl)', { cause: err }));
      }
      reject(new InternalError(`openssl ${args[0] ?? ''} failed: ${stderr.trim() || err.message}`, { cause: err }));
    });
    // A missing binary fails the spawn; writing stdin then errors with EPIPE, which the callback already reports.
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Writes a file through a temporary name in the same directory and a rename, with `mode` whatever the umask. */
async function writeAtomic(file: string, data: string, mode: number): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode, flag: 'wx' });
    await chmod(tmp, mode);
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/** A fresh EC P-256 private key (PKCS#8 PEM), made by openssl. */
function newEcKey(): Promise<string> {
  return openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256']);
}

/** A positive random 127-bit serial, so that no serial file is kept. */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return `0x${b.toString('hex')}`;
}

/** A private temporary directory for openssl configuration, removed after `fn`. */
async function withTempDir<T>(fn: (tmp: string) => Promise<T>): Promise<T> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'doppel-pki-'));
  try {
    return await fn(tmp);
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** An openssl config with only what `req` needs and the `ext` section; the system openssl.cnf is not read. */
function opensslConfig(ext: string[]): string {
  return ['[req]', 'distinguished_name = dn', 'prompt = no', '', '[dn]', 'CN = unused', '', '[ext]', ...ext, ''].join('\n');
}

export interface PkiInit {
  caCert: string;
  caKey: string;
  tokenKey: string;
  tokenPub: string;
}

/**
 * Creates a PKI directory (mode 0700): the fleet CA (`ca.key`, EC P-256, 0600; `ca.pem`, self-signed)
 * and the stream-token pair (`stream-token.key` PKCS#8, 0600; `stream-token.pub` SPKI). Refuses an
 * existing CA unless `force`, which replaces it (every certificate it issued then stops verifying).
 */
export async function initPki(dir: string, opts: { days?: number; force?: boolean } = {}): Promise<PkiInit> {
  const days = checkDays(opts.days, CA_DAYS);
  const caCert = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca.key');
  const tokenKey = path.join(dir, 'stream-token.key');
  const tokenPub = path.join(dir, 'stream-token.pub');
  if (!opts.force) {
    for (const f of [caCert, caKey]) {
      if (await exists(f)) throw new AlreadyExistsError(`${dir} already holds a fleet CA (${path.basename(f)}); use --force to replace it`);
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);

  const keyPem = await newEcKey();
  const keyTmp = `${caKey}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(keyTmp, keyPem, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(keyTmp, 0o600);
    const certPem = await withTempDir(async (tmp) => {
      const cnf = path.join(tmp, 'ca.cnf');
      await writeFile(
        cnf,
        opensslConfig([
          'basicConstraints = critical, CA:TRUE',
          'keyUsage = critical, keyCertSign, cRLSign',
          'subjectKeyIdentifier = hash',
          'authorityKeyIdentifier = keyid:always',
        ]),
      );
      return openssl([
        'req', '-x509', '-new', '-config', cnf, '-extensions', 'ext', '-key', keyTmp,
        '-subj', `/O=doppel/CN=${CA_COMMON_NAME}`, '-days', String(days), '-sha256', '-set_serial', randomSerial(),
      ]);
    });
    const { privateKey, publicKey } = generateKeyPairSync('ed25519', {
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
      publicKeyEncoding: { type: 'spki', format: 'pem' },
    });
    await writeAtomic(tokenKey, privateKey, 0o600);
    await writeAtomic(tokenPub, publicKey, 0o644);
    await rename(keyTmp, caKey);
    await writeAtomic(caCert, certPem, 0o644);
  } finally {
    await unlink(keyTmp).catch(() => undefined);
  }
  return { caCert, caKey, tokenKey, tokenPub };
}

export interface IssueOptions {
  role: CertRole;
  /** More DNS names for the SAN (DNS:NAME is always there). */
  dns?: string[];
  /** IP addresses for the SAN; a peer with IPs in its certificate may call only from them. */
  ips?: string[];
  days?: number;
}

/**
 * Issues `NAME.pem` and `NAME.key` (EC P-256, 0600) signed by the CA in `dir`: subject
 * O=doppel, OU=ROLE, CN=NAME; SAN DNS:NAME, each --dns and each IP; CA:FALSE;
 * digitalSignature, keyEncipherment; serverAuth and clientAuth. Replaces an existing pair.
 */
export async function issueCert(dir: string, name: string, opts: IssueOptions): Promise<{ cert: string; key: string }> {
  const files = pkiFiles(dir, name);
  if (RESERVED_NAMES.has(name)) throw new InvalidArgumentError(`'${name}' is reserved for the PKI's own files; choose another certificate name`);
  if (!isCertRole(opts.role)) throw new InvalidArgumentError(`role must be one of ${CERT_ROLES.join(', ')} (got ${JSON.stringify(opts.role)})`);
  const days = checkDays(opts.days, CERT_DAYS);
  const dns = [...new Set([name, ...(opts.dns ?? []).map(checkDns)])];
  const ips = [...new Set((opts.ips ?? []).map(checkIp))];
  if (!(await exists(files.ca))) {
    throw new NotFoundError(`no fleet CA in ${dir} (ca.pem is missing): run 'doppel certs init --dir ${dir}' first`);
  }
  if (!(await exists(files.caKey))) {
    throw new NotFoundError(`the CA key ${files.caKey} is missing: issue certificates on the machine that ran 'doppel certs init' (ca.key stays there)`);
  }

  const keyPem = await newEcKey();
  const keyTmp = `${files.key}.tmp-${randomBytes(6).toString('hex')}`;
  await writeFile(keyTmp, keyPem, { mode: 0o600, flag: 'wx' });
  try {
    await chmod(keyTmp, 0o600);
    const certPem = await withTempDir(async (tmp) => {
      const cnf = path.join(tmp, 'leaf.cnf');
      await writeFile(
        cnf,
        opensslConfig([
          `subjectAltName = ${[...dns.map((d) => `DNS:${d}`), ...ips.map((ip) => `IP:${ip}`)].join(', ')}`,
          'basicConstraints = critical, CA:FALSE',
          'keyUsage = critical, digitalSignature, keyEncipherment',
          'extendedKeyUsage = serverAuth, clientAuth',
          'subjectKeyIdentifier = hash',
          'authorityKeyIdentifier = keyid, issuer',
        ]),
      );
      const csr = await openssl(['req', '-new', '-config', cnf, '-key', keyTmp, '-subj', `/O=doppel/OU=${opts.role}/CN=${name}`, '-sha256']);
      return openssl(
        [
          'x509', '-req', '-CA', files.ca, '-CAkey', files.caKey, '-set_serial', randomSerial(),
          '-days', String(days), '-extfile', cnf, '-extensions', 'ext', '-sha256',
        ],
        csr,
      );
    });
    await rename(keyTmp, files.key);
    await writeAtomic(files.cert, certPem, 0o644);
  } finally {
    await unlink(keyTmp).catch(() => undefined);
  }
  return { cert: files.cert, key: files.key };
}

export interface CertInfo {
  file: string;
  /** One line, e.g. "O=doppel, OU=agent, CN=host1". */
  subject: string;
  cn: string;
  ou: string;
  /** "DNS:name" and "IP:addr" entries. */
  san: string[];
  notBefore: Date;
  notAfter: Date;
  issuer: string;
  fingerprint256: string;
  serial: string;
  isCa: boolean;
}

function dnFields(dn: string): { line: string; get: (k: string) => string } {
  const parts = dn.split('\n').filter((s) => s !== '');
  return {
    line: parts.join(', '),
    get: (k) => parts.find((p) => p.startsWith(`${k}=`))?.slice(k.length + 1) ?? '',
  };
}

/** node prints IPv6 SANs in full ("0:0:0:0:0:0:0:1"); show them as usually written ("::1"). */
function compactIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
}

/** Reads a PEM certificate file (node's X509Certificate). */
export async function describeCert(file: string): Promise<CertInfo> {
  let pem: Buffer;
  try {
    pem = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`certificate ${file} does not exist`, { cause: err });
    throw new InvalidArgumentError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
  }
  let x: X509Certificate;
  try {
    x = new X509Certificate(pem);
  } catch (err) {
    throw new InvalidArgumentError(`${file} is not a PEM certificate: ${(err as Error).message}`, { cause: err });
  }
  const subject = dnFields(x.subject);
  return {
    file,
    subject: subject.line,
    cn: subject.get('CN'),
    ou: subject.get('OU'),
    san: (x.subjectAltName ?? '')
      .split(', ')
      .filter((s) => s !== '')
      .map((s) => (s.startsWith('IP Address:') ? `IP:${compactIp(s.slice('IP Address:'.length))}` : s)),
    notBefore: new Date(x.validFrom),
    notAfter: new Date(x.validTo),
    issuer: dnFields(x.issuer).line,
    fingerprint256: x.fingerprint256,
    serial: x.serialNumber,
    isCa: x.ca,
  };
}
