/** `doppel nats-auth`: NATS users with per-role subject permissions, and a credentials file per role. */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { InvalidArgumentError, agentUser, coordinatorUser, natsAuthorizationConfig, requireName } from '../../../shared/src/mod.js';
import { flag, parse, str } from '../args.js';

export const NATS_AUTH_HELP = `doppel nats-auth --hosts H1,H2,... --out DIR: NATS users and permissions for a fleet.

Writes into DIR:
  auth.conf                an 'authorization { users = [...] }' block: include it from every
                           nats-server.conf of the cluster ('include auth.conf')
  nats-coordinator.json    the coordinator's credentials  -> coordinator --nats-creds FILE
  nats-agent-HOST.json     each agent's credentials       -> agent --nats-creds FILE

Permissions: the coordinator may publish and subscribe to everything (it owns the job, host
and catalog buckets and the events stream). An agent may publish only its own heartbeats
(doppel.hosts.heartbeat.HOST), its own events (doppel.events.host.HOST.>) and requests to
other agents under its own name (doppel.agent.*.peer.HOST); it may subscribe only to its
commands (doppel.agent.HOST.cmd, doppel.agent.HOST.peer.*), heartbeats, and its own inbox
(_INBOX_HOST.>), and reply to requests. It has no JetStream API access: it cannot read or
write any bucket. Passwords are random (24 bytes); files are written with mode 0600.

  --hosts LIST   agent host names, comma-separated (required)
  --out DIR      output directory (created, mode 0700)
  --force        overwrite existing files`;

export async function natsAuthCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { hosts: { type: 'string' }, out: { type: 'string' }, force: { type: 'boolean' } });
  if (flag(p, 'help')) return void console.log(NATS_AUTH_HELP), 0;
  const hosts = str(p, 'hosts')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean)
    .map((h) => requireName('host name', h));
  const out = str(p, 'out');
  if (hosts.length === 0 || !out) throw new InvalidArgumentError('give --hosts H1,H2,... and --out DIR (see --help)');
  if (new Set(hosts).size !== hosts.length) throw new InvalidArgumentError('--hosts names a host twice');
  await mkdir(out, { recursive: true, mode: 0o700 });
  const users = [coordinatorUser(), ...hosts.map((h) => agentUser(h))];
  const flagWx = flag(p, 'force') ? 'w' : 'wx';
  const write = (name: string, text: string) => writeFile(path.join(out, name), text, { mode: 0o600, flag: flagWx });
  try {
    await write('auth.conf', natsAuthorizationConfig(users));
    for (const u of users) {
      const file = u.user === 'coordinator' ? 'nats-coordinator.json' : `nats-${u.user}.json`;
      await write(file, JSON.stringify({ user: u.user, password: u.password }, null, 2) + '\n');
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new InvalidArgumentError(`${(err as Error).message}: the files exist; use --force to replace them`, { cause: err });
    throw err;
  }
  console.log(`wrote ${path.join(out, 'auth.conf')} and credentials for coordinator, ${hosts.map((h) => `agent-${h}`).join(', ')}`);
  return 0;
}
