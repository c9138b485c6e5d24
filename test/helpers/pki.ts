/** Test PKIs made with the real openssl: a fleet CA with certificates, an expired certificate, a foreign CA. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { initPki, issueCert, pkiFiles, type CertRole } from '../../shared/src/security/pki.js';

const run = promisify(execFile);

export interface TestCertSpec {
  name: string;
  role: CertRole;
  ips?: string[];
  dns?: string[];
}

/** A fresh PKI directory (CA, stream-token pair) with a certificate for each of `names`. */
export async function makeTestPki(names: TestCertSpec[]): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doppel-test-pki-'));
  try {
    await initPki(dir);
    await Promise.all(names.map((n) => issueCert(dir, n.name, { role: n.role, ips: n.ips ?? [], dns: n.dns ?? [] })));
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * NAME.pem and NAME.key in `dir`, signed by the CA there but valid only on 1 January 2020.
 * `openssl x509` (3.0) cannot set validity dates, so this runs `openssl ca` with -startdate and
 * -enddate against a throwaway CA database in a temporary directory.
 */
export async function issueExpiredCert(
  dir: string,
  name: string,
  role: CertRole,
  opts: { ips?: string[]; dns?: string[] } = {},
): Promise<{ cert: string; key: string }> {
  const files = pkiFiles(dir, name);
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'doppel-expired-'));
  try {
    const key = path.join(tmp, 'leaf.key');
    const csr = path.join(tmp, 'leaf.csr');
    const out = path.join(tmp, 'leaf.pem');
    const cnf = path.join(tmp, 'ca.cnf');
    const san = [name, ...(opts.dns ?? [])].map((d) => `DNS:${d}`).concat((opts.ips ?? []).map((ip) => `IP:${ip}`));
    await writeFile(path.join(tmp, 'index.txt'), '');
    await writeFile(path.join(tmp, 'serial'), '1000\n');
    await writeFile(
      cnf,
      [
        '[ca]',
        'default_ca = test_ca',
        '[test_ca]',
        `database = ${path.join(tmp, 'index.txt')}`,
        `new_certs_dir = ${tmp}`,
        `serial = ${path.join(tmp, 'serial')}`,
        'default_md = sha256',
        'policy = any',
        'unique_subject = no',
        'email_in_dn = no',
        '[any]',
        'organizationName = optional',
        'organizationalUnitName = optional',
        'commonName = supplied',
        '[req]',
        'distinguished_name = dn',
        'prompt = no',
        '[dn]',
        'CN = unused',
        '[ext]',
        `subjectAltName = ${san.join(', ')}`,
        'basicConstraints = critical, CA:FALSE',
        'keyUsage = critical, digitalSignature, keyEncipherment',
        'extendedKeyUsage = serverAuth, clientAuth',
        '',
      ].join('\n'),
    );
    await run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', key]);
    await run('openssl', ['req', '-new', '-config', cnf, '-key', key, '-subj', `/O=doppel/OU=${role}/CN=${name}`, '-out', csr]);
    await run('openssl', [
      'ca', '-batch', '-config', cnf, '-cert', files.ca, '-keyfile', files.caKey, '-in', csr, '-out', out,
      '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-extensions', 'ext', '-preserveDN', '-notext',
    ]);
    await writeFile(files.key, await readFile(key), { mode: 0o600 });
    await chmod(files.key, 0o600);
    await writeFile(files.cert, await readFile(out));
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { cert: files.cert, key: files.key };
}

/**
 * A second, unrelated PKI in `dir2` (made there unless it already holds one) with a certificate
 * of the same name, for wrong-CA tests.
 */
export async function makeForeignCa(
  dir2: string,
  name: string,
  role: CertRole,
  opts: { ips?: string[]; dns?: string[] } = {},
): Promise<{ ca: string; cert: string; key: string }> {
  if (!existsSync(pkiFiles(dir2, name).ca)) await initPki(dir2);
  const issued = await issueCert(dir2, name, { role, ips: opts.ips ?? [], dns: opts.dns ?? [] });
  return { ca: pkiFiles(dir2, name).ca, ...issued };
}
