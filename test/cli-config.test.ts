/** Config files for the daemons (`--config FILE` / DOPPEL_CONFIG): format, errors and precedence. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { envName, flag, int, list, parse, str, type Options } from '../cli/src/args.js';
import { InvalidArgumentError } from '../shared/src/mod.js';

const OPTIONS: Options = {
  config: { type: 'string' },
  host: { type: 'string' },
  nats: { type: 'string' },
  http: { type: 'string' },
  'repo-dir': { type: 'string' },
  'heartbeat-ms': { type: 'string' },
  insecure: { type: 'boolean' },
  'ready-line': { type: 'boolean' },
  peer: { type: 'string', multiple: true },
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'doppel-config-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function configFile(dir: string, text: string, name = 'doppel.conf'): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, `expected InvalidArgumentError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  });
}

test('envName: DOPPEL_ + upper case with - as _, legacy names kept', () => {
  assert.equal(envName('host'), 'DOPPEL_HOST');
  assert.equal(envName('repo-dir'), 'DOPPEL_REPO_DIR');
  assert.equal(envName('cert-name'), 'DOPPEL_CERT_NAME');
  assert.equal(envName('nats-creds'), 'DOPPEL_NATS_CREDS');
  assert.equal(envName('config'), 'DOPPEL_CONFIG');
  assert.equal(envName('nats'), 'DOPPEL_NATS_URL');
  assert.equal(envName('data'), 'DOPPEL_DATA_DIR');
  assert.equal(envName('grpc'), 'DOPPEL_GRPC_LISTEN');
  assert.equal(envName('http'), 'DOPPEL_HTTP_LISTEN');
  assert.equal(envName('repo-listen'), 'DOPPEL_REPO_LISTEN');
});

test('a config file: comments, blank lines, spacing, quotes, booleans, repeated options', async () => {
  await withDir(async (dir) => {
    const file = await configFile(
      dir,
      [
        '# the agent of hv-01',
        '',
        '   # an indented comment',
        'host = hv-01',
        'nats=nats://a:4222,nats://b:4222',
        '  heartbeat-ms   =   1500  ',
        'http = ""',
        'repo-dir = /srv/doppel repo',
        'insecure = true',
        'ready-line = false',
        'peer = hv-02',
        'peer = hv-03',
        '',
      ].join('\r\n'),
    );
    const p = parse(['--config', file, 'serve'], OPTIONS, {});
    assert.equal(str(p, 'host'), 'hv-01');
    assert.equal(str(p, 'nats'), 'nats://a:4222,nats://b:4222');
    assert.equal(int(p, 'heartbeat-ms', 2000), 1500);
    assert.equal(str(p, 'http', 'default'), '', 'an empty quoted value is an empty string, not the default');
    assert.equal(str(p, 'repo-dir'), '/srv/doppel repo');
    assert.equal(flag(p, 'insecure'), true);
    assert.equal(flag(p, 'ready-line'), false);
    assert.deepEqual(list(p, 'peer'), ['hv-02', 'hv-03']);
    assert.deepEqual(p.positionals, ['serve']);
    assert.equal(str(p, 'config'), file);
  });
});

test('precedence: command line > environment > config file > default', async () => {
  await withDir(async (dir) => {
    const file = await configFile(dir, 'host = from-file\nnats = nats://file:4222\nrepo-dir = /file\ninsecure = true\npeer = file-1\npeer = file-2\n');
    const env: NodeJS.ProcessEnv = { DOPPEL_NATS_URL: 'nats://env:4222', DOPPEL_REPO_DIR: 'env-dir', DOPPEL_HOST: 'from-env' };
    const p = parse(['--config', file, '--host', 'from-cli', '--peer', 'cli-1'], OPTIONS, env);
    // The daemons read a value as str(p, name, env ?? default): exactly that, here.
    const get = (name: string, fallback: string) => str(p, name, env[envName(name)] ?? fallback);
    assert.equal(get('host', ''), 'from-cli', 'the command line beats the environment and the file');
    assert.equal(get('nats', 'nats://127.0.0.1:4222'), 'nats://env:4222', 'the environment beats the file (legacy name DOPPEL_NATS_URL)');
    assert.equal(get('repo-dir', '/default'), 'env-dir', 'the environment beats the file (DOPPEL_REPO_DIR)');
    assert.equal(get('heartbeat-ms', '2000'), '2000', 'the default when nothing sets it');
    assert.equal(flag(p, 'insecure'), true, 'the file beats the default');
    assert.deepEqual(list(p, 'peer'), ['cli-1'], 'a repeatable option on the command line replaces the file\'s, it does not add to them');

    // An empty environment variable is still set: it wins over the file (DOPPEL_HTTP_LISTEN='' disables HTTP).
    const f2 = await configFile(dir, 'http = 0.0.0.0:7401\n', 'b.conf');
    const q = parse(['--config', f2], OPTIONS, { DOPPEL_HTTP_LISTEN: '' });
    assert.equal(q.values.http, undefined);
    assert.equal(str(parse(['--config', f2], OPTIONS, {}), 'http'), '0.0.0.0:7401');
    // --name=value and short forms count as given on the command line too.
    assert.equal(str(parse([`--config=${f2}`, '--http=127.0.0.1:1'], OPTIONS, {}), 'http'), '127.0.0.1:1');
  });
});

test('DOPPEL_CONFIG names the file when --config is absent; --config wins over it', async () => {
  await withDir(async (dir) => {
    const a = await configFile(dir, 'host = a\n', 'a.conf');
    const b = await configFile(dir, 'host = b\n', 'b.conf');
    assert.equal(str(parse([], OPTIONS, { DOPPEL_CONFIG: a }), 'host'), 'a');
    assert.equal(str(parse(['--config', b], OPTIONS, { DOPPEL_CONFIG: a }), 'host'), 'b');
    assert.equal(parse([], OPTIONS, { DOPPEL_CONFIG: '' }).values.host, undefined, 'an empty DOPPEL_CONFIG reads nothing');
  });
});

test('commands without a config option ignore DOPPEL_CONFIG and reject --config', async () => {
  await withDir(async (dir) => {
    const file = await configFile(dir, 'host = a\n');
    const noConfig: Options = { host: { type: 'string' } };
    assert.equal(parse([], noConfig, { DOPPEL_CONFIG: file }).values.host, undefined);
    rejects(() => parse(['--config', file], noConfig, {}), /Unknown option '--config'.*see --help/);
  });
});

test('errors name the file and the line', async () => {
  await withDir(async (dir) => {
    const unknown = await configFile(dir, '# ok\nhost = hv-01\n\nlisten-port = 7410\n', 'unknown.conf');
    rejects(() => parse(['--config', unknown], OPTIONS, {}), new RegExp(`${unknown}:4: unknown setting 'listen-port'.*host`));
    const bad = await configFile(dir, 'host = hv-01\nthis is not a setting\n', 'bad.conf');
    rejects(() => parse(['--config', bad], OPTIONS, {}), new RegExp(`${bad}:2: expected 'name = value'`));
    const boolean = await configFile(dir, 'insecure = yes\n', 'bool.conf');
    rejects(() => parse(['--config', boolean], OPTIONS, {}), new RegExp(`${boolean}:1: 'insecure' must be true or false`));
    const twice = await configFile(dir, 'host = a\n# again\nhost = b\n', 'twice.conf');
    rejects(() => parse(['--config', twice], OPTIONS, {}), new RegExp(`${twice}:3: 'host' is already set on line 1`));
    const nested = await configFile(dir, 'config = /etc/other.conf\n', 'nested.conf');
    rejects(() => parse(['--config', nested], OPTIONS, {}), new RegExp(`${nested}:1: unknown setting 'config'`));
    const help = await configFile(dir, 'help = true\n', 'help.conf');
    rejects(() => parse(['--config', help], OPTIONS, {}), new RegExp(`${help}:1: unknown setting 'help'`));
    // A bad line is an error even when the command line sets that option.
    rejects(() => parse(['--config', boolean, '--insecure'], OPTIONS, {}), /must be true or false/);
  });
});

test('a missing config file is an error; --help does not need one', async () => {
  await withDir(async (dir) => {
    const missing = path.join(dir, 'nope.conf');
    rejects(() => parse(['--config', missing], OPTIONS, {}), new RegExp(`cannot read config file ${missing}: .*ENOENT`));
    rejects(() => parse([], OPTIONS, { DOPPEL_CONFIG: missing }), /cannot read config file/);
    assert.equal(flag(parse(['--help', '--config', missing], OPTIONS, {}), 'help'), true);
  });
});

test('parse uses process.env by default', async () => {
  await withDir(async (dir) => {
    const file = await configFile(dir, 'host = from-file\nrepo-dir = /file\n');
    const saved = { host: process.env.DOPPEL_HOST, repoDir: process.env.DOPPEL_REPO_DIR };
    try {
      process.env.DOPPEL_HOST = 'from-env';
      delete process.env.DOPPEL_REPO_DIR;
      const p = parse(['--config', file], OPTIONS);
      assert.equal(p.values.host, undefined, 'DOPPEL_HOST is set, so the file does not fill host');
      assert.equal(str(p, 'repo-dir'), '/file');
    } finally {
      for (const [k, v] of [['DOPPEL_HOST', saved.host], ['DOPPEL_REPO_DIR', saved.repoDir]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
