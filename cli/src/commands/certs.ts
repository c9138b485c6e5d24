/** `doppel certs`: the fleet PKI (a private CA, one certificate per host or service, the stream-token key pair). */
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../../../shared/src/mod.js';
import {
  CA_COMMON_NAME,
  CA_DAYS,
  CERT_DAYS,
  CERT_ROLES,
  defaultPkiDir,
  describeCert,
  initPki,
  isCertRole,
  issueCert,
  pkiFiles,
  type CertInfo,
} from '../../../shared/src/security/pki.js';
import { flag, int, list, parse, str, type Parsed } from '../args.js';
import { printJson, table } from '../output.js';

export const CERTS_LAYOUT_HELP = `The PKI directory: --dir DIR, default $DOPPEL_PKI, else /etc/doppel/pki when run as
root, else ~/.config/doppel/pki. Which file goes to which machine:

  ca.pem              the fleet CA certificate: to every machine (hosts, services, operators)
  ca.key              the CA's private key: stays on the admin machine, offline if you can;
                      never copy it (certificates are issued where it is)
  NAME.pem, NAME.key  the certificate and private key of host or service NAME: to that
                      machine only (NAME.key is mode 0600; keep it so)
  stream-token.key    signs the data-plane stream tokens: to the coordinator only
  stream-token.pub    checks the stream tokens: to every agent

Roles (--role, carried in the certificate as OU=ROLE):
  agent        an agent host (doppel agent --host NAME)
  coordinator  the coordinator
  repository   a standalone backup repository (doppel repo serve)
  admin        an API client or operator with full access
  reader       an API client or operator with read-only access

Servers verify a peer by the fleet CA and by its certificate's role; clients verify a
server by its name (the certificate's SAN carries DNS:NAME), not by the address dialled.`;

export const CERTS_HELP = `doppel certs COMMAND [options]: the fleet PKI, made with the system's openssl.

  doppel certs init [--dir DIR] [--days N] [--force]     create the fleet CA and the stream-token key pair
  doppel certs issue NAME --role ROLE [--dns NAME]... [--ip ADDR]... [--days N] [--dir DIR]
                                                         issue NAME.pem and NAME.key signed by the CA
  doppel certs show NAME [--dir DIR] [--json]            show one certificate (NAME, ca, or a .pem file)
  doppel certs list [--dir DIR] [--json]                 list every certificate in the directory

${CERTS_LAYOUT_HELP}`;

export const CERTS_INIT_HELP = `doppel certs init [--dir DIR] [--days N] [--force]: create a fleet PKI.

Makes DIR (mode 0700) with the fleet CA (ca.key: EC P-256, mode 0600; ca.pem: self-signed,
CN=${CA_COMMON_NAME}) and the Ed25519 key pair that signs data-plane stream tokens
(stream-token.key, mode 0600; stream-token.pub). Run it once, on the admin machine.

  --dir DIR   the PKI directory (see below)
  --days N    how long the CA is valid (default ${CA_DAYS})
  --force     replace an existing CA: every certificate the old one issued stops verifying
  --json      print the created files as JSON

${CERTS_LAYOUT_HELP}`;

export const CERTS_ISSUE_HELP = `doppel certs issue NAME --role ROLE [--dns NAME]... [--ip ADDR]... [--days N] [--dir DIR]:
issue a certificate for host or service NAME, signed by the CA in DIR.

Writes NAME.key (EC P-256, mode 0600) and NAME.pem: subject O=doppel, OU=ROLE, CN=NAME;
SAN DNS:NAME plus each --dns and --ip; valid for TLS server and client use. Issuing a
name again replaces its key and certificate. NAME is 1-63 letters, digits, '-' or '_'
(for a host: its doppel host name).

  --role ROLE   ${CERT_ROLES.join(' | ')} (required)
  --dns NAME    another DNS name for the SAN (repeatable)
  --ip ADDR     an IP address for the SAN (repeatable); a certificate with IP addresses
                is accepted only from those addresses
  --days N      how long the certificate is valid (default ${CERT_DAYS})
  --dir DIR     the PKI directory holding ca.pem and ca.key (see below)
  --json        print the issued certificate as JSON

${CERTS_LAYOUT_HELP}`;

export const CERTS_SHOW_HELP = `doppel certs show NAME [--dir DIR] [--json]: show a certificate.

NAME is a certificate name (DIR/NAME.pem), 'ca' for the fleet CA, or a path to a .pem file.
Shows subject, role, SANs, validity, issuer, fingerprint, whether the fleet CA in DIR
signed it and whether NAME.key beside it matches.

  --dir DIR   the PKI directory (see below)
  --json      print as JSON

${CERTS_LAYOUT_HELP}`;

export const CERTS_LIST_HELP = `doppel certs list [--dir DIR] [--json]: list every certificate (*.pem) in the PKI directory.

One line each: name, CN, role, SANs, expiry, status (ok, EXPIRED, NOT YET VALID, or
NOT FROM THIS CA when the CA in DIR did not sign it) and whether its key is here.

  --dir DIR   the PKI directory (see below)
  --json      print as JSON

${CERTS_LAYOUT_HELP}`;

const DIR_OPTION = { dir: { type: 'string' }, json: { type: 'boolean' } } as const;

function pkiDir(p: Parsed): string {
  return path.resolve(str(p, 'dir') || defaultPkiDir());
}

function day(d: Date): string {
  return d.toISOString().slice(0, 10);
}

export async function certsCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'init':
      return certsInit(rest);
    case 'issue':
      return certsIssue(rest);
    case 'show':
      return certsShow(rest);
    case 'list':
      return certsList(rest);
    case undefined:
      console.log(CERTS_HELP);
      return 2;
    case '--help':
    case '-h':
    case 'help':
      console.log(CERTS_HELP);
      return 0;
    default:
      throw new InvalidArgumentError(`unknown certs command '${sub}': use init, issue, show or list (see doppel certs --help)`);
  }
}

async function certsInit(argv: string[]): Promise<number> {
  const p = parse(argv, { ...DIR_OPTION, days: { type: 'string' }, force: { type: 'boolean' } });
  if (flag(p, 'help')) return void console.log(CERTS_INIT_HELP), 0;
  if (p.positionals.length > 0) throw new InvalidArgumentError(`certs init takes no arguments (got ${p.positionals.join(' ')}); see --help`);
  const dir = pkiDir(p);
  const files = await initPki(dir, { days: int(p, 'days', CA_DAYS), force: flag(p, 'force') });
  const ca = await describeCert(files.caCert);
  if (flag(p, 'json')) return printJson({ dir, ...files, notAfter: ca.notAfter, fingerprint256: ca.fingerprint256 }), 0;
  console.log(`created the fleet CA in ${dir} (valid until ${day(ca.notAfter)}, SHA-256 ${ca.fingerprint256})`);
  console.log(`  ca.pem            copy to every machine`);
  console.log(`  ca.key            keep here, offline if you can; never copy it`);
  console.log(`  stream-token.key  copy to the coordinator only`);
  console.log(`  stream-token.pub  copy to every agent`);
  console.log(`next: doppel certs issue NAME --role ROLE --dir ${dir}   (one per host and service)`);
  return 0;
}

async function certsIssue(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...DIR_OPTION,
    role: { type: 'string' },
    dns: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    days: { type: 'string' },
  });
  if (flag(p, 'help')) return void console.log(CERTS_ISSUE_HELP), 0;
  const [name, ...extra] = p.positionals;
  if (!name) return void console.log(CERTS_ISSUE_HELP), 2;
  if (extra.length > 0) throw new InvalidArgumentError(`certs issue takes one NAME (got ${p.positionals.join(' ')}); see --help`);
  const role = str(p, 'role');
  if (!role) throw new InvalidArgumentError(`--role is required: one of ${CERT_ROLES.join(', ')}`);
  if (!isCertRole(role)) throw new InvalidArgumentError(`--role must be one of ${CERT_ROLES.join(', ')} (got ${JSON.stringify(role)})`);
  const dir = pkiDir(p);
  const issued = await issueCert(dir, name, { role, dns: list(p, 'dns'), ips: list(p, 'ip'), days: int(p, 'days', CERT_DAYS) });
  const info = await describeCert(issued.cert);
  if (flag(p, 'json')) return printJson({ ...info, key: issued.key, role }), 0;
  console.log(`issued ${name} (role ${role}), valid until ${day(info.notAfter)}`);
  console.log(`  ${issued.cert}`);
  console.log(`  ${issued.key}`);
  console.log(`  SAN: ${info.san.join(', ')}`);
  const token = role === 'agent' ? ['stream-token.pub'] : role === 'coordinator' ? ['stream-token.key'] : [];
  const copy = ['ca.pem', `${name}.pem`, `${name}.key`, ...token];
  console.log(`copy ${copy.slice(0, -1).join(', ')} and ${copy.at(-1) ?? ''} to ${name}'s PKI directory`);
  return 0;
}

type Status = 'ok' | 'EXPIRED' | 'NOT YET VALID' | 'NOT FROM THIS CA';
type KeyState = 'matches' | 'missing' | 'DOES NOT MATCH' | 'unreadable';

interface CertReport extends CertInfo {
  name: string;
  role: string;
  status: Status;
  /** Whether the fleet CA in the directory signed it; null when there is no ca.pem. */
  signedByCa: boolean | null;
  keyFile: string;
  key: KeyState;
}

async function loadCa(dir: string): Promise<X509Certificate | null> {
  try {
    return new X509Certificate(await readFile(path.join(dir, 'ca.pem')));
  } catch {
    return null;
  }
}

async function keyState(x: X509Certificate, keyFile: string): Promise<KeyState> {
  let pem: Buffer;
  try {
    pem = await readFile(keyFile);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable';
  }
  try {
    return x.checkPrivateKey(createPrivateKey(pem)) ? 'matches' : 'DOES NOT MATCH';
  } catch {
    return 'unreadable';
  }
}

async function report(file: string, ca: X509Certificate | null, now = new Date()): Promise<CertReport> {
  const info = await describeCert(file);
  const x = new X509Certificate(await readFile(file));
  const signedByCa = ca ? x.checkIssued(ca) && x.verify(ca.publicKey) : null;
  const status: Status =
    signedByCa === false ? 'NOT FROM THIS CA' : now > info.notAfter ? 'EXPIRED' : now < info.notBefore ? 'NOT YET VALID' : 'ok';
  const keyFile = file.replace(/\.pem$/, '.key');
  const name = path.basename(file, '.pem');
  return {
    ...info,
    name,
    role: name === 'ca' && info.isCa ? 'CA' : info.ou,
    status,
    signedByCa,
    keyFile,
    key: await keyState(x, keyFile),
  };
}

async function certsShow(argv: string[]): Promise<number> {
  const p = parse(argv, DIR_OPTION);
  if (flag(p, 'help')) return void console.log(CERTS_SHOW_HELP), 0;
  const [name, ...extra] = p.positionals;
  if (!name) return void console.log(CERTS_SHOW_HELP), 2;
  if (extra.length > 0) throw new InvalidArgumentError(`certs show takes one NAME (got ${p.positionals.join(' ')}); see --help`);
  const dir = pkiDir(p);
  const file = name.includes('/') || name.endsWith('.pem') ? path.resolve(name) : name === 'ca' ? path.join(dir, 'ca.pem') : pkiFiles(dir, name).cert;
  const r = await report(file, await loadCa(dir));
  if (flag(p, 'json')) return printJson(r), 0;
  const rows: [string, string][] = [
    ['file', r.file],
    ['subject', r.subject],
    ['role', r.role || '(none)'],
    ['SAN', r.san.join(', ') || '(none)'],
    ['issuer', r.issuer],
    ['valid', `${r.notBefore.toISOString()} to ${r.notAfter.toISOString()}${r.status === 'ok' || r.status === 'NOT FROM THIS CA' ? '' : `  ${r.status}`}`],
    ['serial', r.serial],
    ['sha256', r.fingerprint256],
    ['CA', r.signedByCa === null ? `no ca.pem in ${dir}` : r.signedByCa ? `signed by ${path.join(dir, 'ca.pem')}` : `NOT signed by ${path.join(dir, 'ca.pem')}`],
    ['key', `${r.keyFile} (${r.key})`],
  ];
  for (const [k, v] of rows) console.log(`${k.padEnd(8)} ${v}`);
  return 0;
}

async function certsList(argv: string[]): Promise<number> {
  const p = parse(argv, DIR_OPTION);
  if (flag(p, 'help')) return void console.log(CERTS_LIST_HELP), 0;
  if (p.positionals.length > 0) throw new InvalidArgumentError(`certs list takes no arguments (got ${p.positionals.join(' ')}); see --help`);
  const dir = pkiDir(p);
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`no PKI directory ${dir}: run 'doppel certs init --dir ${dir}' first`, { cause: err });
    }
    throw new InvalidArgumentError(`cannot read ${dir}: ${(err as Error).message}`, { cause: err });
  }
  const pems = entries.filter((e) => e.endsWith('.pem')).sort((a, b) => (a === 'ca.pem' ? -1 : b === 'ca.pem' ? 1 : a.localeCompare(b)));
  const ca = await loadCa(dir);
  const certs: (CertReport | { name: string; file: string; error: string })[] = [];
  for (const e of pems) {
    const file = path.join(dir, e);
    try {
      certs.push(await report(file, ca));
    } catch (err) {
      certs.push({ name: path.basename(e, '.pem'), file, error: (err as Error).message });
    }
  }
  if (flag(p, 'json')) return printJson({ dir, certs }), 0;
  console.log(`${dir}:`);
  console.log(
    table(
      certs.map((c) =>
        'error' in c
          ? { name: c.name, cn: '', role: '', san: '', expires: '', status: `unreadable: ${c.error}`, key: '' }
          : {
              name: c.name,
              cn: c.cn,
              role: c.role,
              san: c.san.join(','),
              expires: day(c.notAfter),
              status: c.status,
              key: c.key === 'matches' ? 'yes' : c.key === 'missing' ? 'no' : c.key,
            },
      ),
    ),
  );
  return 0;
}
