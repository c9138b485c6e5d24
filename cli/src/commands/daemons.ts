/** Long-running commands: `doppel agent`, `doppel coordinator`, `doppel up`, `doppel repo serve`, `doppel array serve`. */
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, NotFoundError, agentInboxPrefix, requireInt, connectNats, createRootLogger, loadTlsIdentity, type LogFormat, type Logger, type Transport } from '../../../shared/src/mod.js';
import { ApiAuth } from '../../../coordinator/src/api/auth.js';
import {
  DAEMON_SECURITY_HELP,
  DAEMON_SECURITY_OPTIONS,
  agentTokenVerifier,
  coordinatorTokenSigner,
  daemonTransport,
  natsAuth,
  pkiDir,
} from '../security.js';
import { readFileSync } from 'node:fs';
import { Agent, ArrayClient, compileAgentOptions, createDriver } from '../../../agent/src/mod.js';
import { Coordinator } from '../../../coordinator/src/mod.js';
import { startRepositoryServer } from '../../../repository/src/mod.js';
import { startArrayServer } from '../../../array/src/mod.js';
import { LocalFleet } from '../fleet/local-fleet.js';
import { flag, int, parse, str, type Options } from '../args.js';

const LOG_OPTIONS: Options = {
  config: { type: 'string' },
  'log-format': { type: 'string' },
  'log-level': { type: 'string' },
  'ready-line': { type: 'boolean' },
};

function rootLogger(name: string, p: ReturnType<typeof parse>): Logger {
  const format = str(p, 'log-format', process.env.DOPPEL_LOG_FORMAT ?? 'json');
  return createRootLogger({
    name,
    format: format === 'pretty' ? 'pretty' : ('json' as LogFormat),
    level: (str(p, 'log-level', process.env.DOPPEL_LOG_LEVEL ?? 'info') as 'info'),
  });
}

/** Runs until SIGINT/SIGTERM, then stops cleanly. */
function untilSignal(log: Logger, stop: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal: sig }, 'shutting down');
      stop()
        .catch((err: unknown) => log.error({ err }, 'shutdown failed'))
        .finally(() => resolve());
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });
}

export const AGENT_HELP = `doppel agent: run the agent of one hypervisor host.

  --host NAME            this host's name in the fleet (required; letters, digits, - and _)
  --cluster NAME         the cluster this host belongs to (default 'default', env DOPPEL_CLUSTER);
                         register its networks, datastores and CPU models with 'doppel cluster add'
  --listen ADDR          gRPC data-plane address, HOST:PORT (default 127.0.0.1:0 = any free port)
  --advertise ADDR       address other agents should dial (default: the bound listen address)
  --data DIR             agent state directory: VM configurations and change tracking (default: $TMPDIR/doppel-agent-NAME)
  --datastore DIR        where VM disks live (default: DATA/datastore); hosts that mount the same
                         datastore give clones an overlay on a shared base instead of a disk copy
  --nats URL             NATS server(s), comma-separated (default nats://127.0.0.1:4222, env DOPPEL_NATS_URL)
  --driver sim|qemu      hypervisor driver (env DOPPEL_DRIVER): sim, the simulated hypervisor (default);
                         qemu, real QEMU/KVM guests driven over QMP (qcow2 disks in the datastore)
  --qemu-kernel FILE     qemu: direct kernel boot of the guests this host creates (env DOPPEL_QEMU_KERNEL);
                         without it they boot from their first disk (SeaBIOS)
  --qemu-initrd FILE     qemu: their initrd (env DOPPEL_QEMU_INITRD)
  --qemu-append TEXT     qemu: their kernel command line (env DOPPEL_QEMU_APPEND)
  --qemu-accel kvm|tcg|auto  qemu: accelerator (default auto = KVM when a probe guest runs under it,
                         else TCG; env DOPPEL_QEMU_ACCEL); the agent logs which, and heartbeats say it
  --memory-mib N         memory offered to VMs (default 75% of this machine's)
  --cpus N               CPUs offered (default: this machine's)
  --max-vms N            VM limit (default 64)
  --heartbeat-ms N       heartbeat interval (default 2000); a host is down after 3 missed
  --array URL            the storage array that holds VMs' bypass volumes (seed 001), e.g. a
                         'doppel array serve' at http://HOST:PORT (env DOPPEL_ARRAY)
  --array-token-file F   the array's bearer token, if it has one
  --allow-fault-injection  honour the test-only 'fault' field of clone requests (and skipRevert of backups)
  --config FILE          settings file, 'name = value' per line (flags > env > file; env DOPPEL_CONFIG)
  --log-format json|pretty, --log-level LEVEL

${DAEMON_SECURITY_HELP}
The agent's certificate name defaults to its --host; its NATS inbox is _INBOX_HOST.`;

export async function agentCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...LOG_OPTIONS,
    host: { type: 'string' },
    cluster: { type: 'string' },
    listen: { type: 'string' },
    advertise: { type: 'string' },
    data: { type: 'string' },
    datastore: { type: 'string' },
    nats: { type: 'string' },
    driver: { type: 'string' },
    'qemu-kernel': { type: 'string' },
    'qemu-initrd': { type: 'string' },
    'qemu-append': { type: 'string' },
    'qemu-accel': { type: 'string' },
    'memory-mib': { type: 'string' },
    cpus: { type: 'string' },
    'max-vms': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'allow-fault-injection': { type: 'boolean' },
    array: { type: 'string' },
    'array-token-file': { type: 'string' },
    ...DAEMON_SECURITY_OPTIONS,
  });
  if (flag(p, 'help')) return void console.log(AGENT_HELP), 0;
  const opts = compileAgentOptions({
    host: str(p, 'host', process.env.DOPPEL_HOST ?? ''),
    cluster: str(p, 'cluster', process.env.DOPPEL_CLUSTER ?? 'default'),
    listen: str(p, 'listen', process.env.DOPPEL_LISTEN ?? '127.0.0.1:0'),
    advertise: str(p, 'advertise', process.env.DOPPEL_ADVERTISE ?? ''),
    dataDir: str(p, 'data', process.env.DOPPEL_DATA_DIR ?? '') || undefined,
    natsUrl: str(p, 'nats', process.env.DOPPEL_NATS_URL ?? 'nats://127.0.0.1:4222'),
    driver: str(p, 'driver', process.env.DOPPEL_DRIVER ?? 'sim'),
    ...(p.values['memory-mib'] ? { memoryMib: int(p, 'memory-mib', 0) } : {}),
    ...(p.values.cpus ? { cpus: int(p, 'cpus', 0) } : {}),
    ...(p.values['max-vms'] ? { maxVms: int(p, 'max-vms', 0) } : {}),
    heartbeatMs: int(p, 'heartbeat-ms', 2000),
    allowFaultInjection: flag(p, 'allow-fault-injection'),
    qemu: {
      kernel: str(p, 'qemu-kernel', process.env.DOPPEL_QEMU_KERNEL ?? ''),
      initrd: str(p, 'qemu-initrd', process.env.DOPPEL_QEMU_INITRD ?? ''),
      append: str(p, 'qemu-append', process.env.DOPPEL_QEMU_APPEND ?? ''),
      accel: str(p, 'qemu-accel', process.env.DOPPEL_QEMU_ACCEL ?? 'auto'),
    },
  });
  const log = rootLogger('doppel-agent', p);
  const transport = daemonTransport(p, 'doppel agent', opts.host, log);
  const tokens = agentTokenVerifier(p, opts.host);
  const nc = await connectNats(opts.natsUrl, `doppel-agent-${opts.host}`, {
    ...natsAuth(p, opts.natsUrl, transport, log),
    inboxPrefix: agentInboxPrefix(opts.host),
  });
  const datastoreDir = str(p, 'datastore', process.env.DOPPEL_DATASTORE ?? '');
  const arrayUrl = str(p, 'array', process.env.DOPPEL_ARRAY ?? '');
  const arrayTokenFile = str(p, 'array-token-file', '');
  const array = arrayUrl ? new ArrayClient({ url: arrayUrl, ...(arrayTokenFile ? { token: readFileSync(arrayTokenFile, 'utf8').trim() } : {}) }) : undefined;
  const driver = createDriver(opts.driver, { dataDir: opts.dataDir, ...(datastoreDir ? { datastoreDir } : {}), ...(array ? { array } : {}), log, qemu: opts.qemu });
  const agent = await Agent.start(opts, { driver, logger: log, nc, transport, tokens, ...(array ? { array } : {}) });
  if (flag(p, 'ready-line')) console.log(JSON.stringify({ ready: true, host: opts.host, dataAddr: agent.dataAddr }));
  await untilSignal(log, async () => {
    await agent.stop();
    await nc.drain();
  });
  return 0;
}

export const COORDINATOR_HELP = `doppel coordinator: run the coordinator (host registry, clone planning, jobs, API).

  --nats URL       NATS server(s) with JetStream (default nats://127.0.0.1:4222, env DOPPEL_NATS_URL)
  --grpc ADDR      gRPC API address (default 127.0.0.1:7400)
  --http ADDR      JSON/HTTP API address (default 127.0.0.1:7401; '' disables)
  --repo-dir DIR   run the backup repository in this process, on DIR (default ~/.local/share/doppel/repo)
  --repo-listen ADDR   its gRPC address (default 127.0.0.1:7402)
  --repo-advertise ADDR  the address agents on other hosts dial for it (default: the bound --repo-listen)
  --repository ADDR    use a standalone repository ('doppel repo serve') instead
  --nats-replicas N    JetStream replicas of the events stream and of buckets it creates (default 1;
                       3 on a three-node cluster; env DOPPEL_NATS_REPLICAS)
  --api-tokens FILE    API bearer tokens, lines 'admin TOKEN' or 'reader TOKEN' (env DOPPEL_API_TOKENS)
  --config FILE        settings file, 'name = value' per line (flags > env > file; env DOPPEL_CONFIG)
  --log-format json|pretty, --log-level LEVEL

${DAEMON_SECURITY_HELP}
Under TLS the coordinator presents DIR/coordinator.pem and its in-process repository DIR/repository.pem.
API callers need a client certificate with role admin or reader, or a bearer token; reading needs
reader, every change (create, run, destroy, clone, back up, restore) needs admin. With --insecure
and no --api-tokens the API is open.

All state (hosts, jobs, events, the backup catalog) lives in NATS JetStream:
restart it at will. Backup data lives in the repository directory.`;

export async function coordinatorCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...LOG_OPTIONS,
    nats: { type: 'string' },
    grpc: { type: 'string' },
    http: { type: 'string' },
    'repo-dir': { type: 'string' },
    'repo-listen': { type: 'string' },
    'repo-advertise': { type: 'string' },
    repository: { type: 'string' },
    'api-tokens': { type: 'string' },
    'nats-replicas': { type: 'string' },
    ...DAEMON_SECURITY_OPTIONS,
  });
  if (flag(p, 'help')) return void console.log(COORDINATOR_HELP), 0;
  const repository = str(p, 'repository', process.env.DOPPEL_REPOSITORY ?? '');
  const repoDir = str(p, 'repo-dir', process.env.DOPPEL_REPO_DIR ?? path.join(os.homedir(), '.local', 'share', 'doppel', 'repo'));
  const log = rootLogger('doppel-coordinator', p);
  const transport = daemonTransport(p, 'doppel coordinator', 'coordinator', log);
  // The in-process repository has an identity of its own: agents check for the name 'repository'.
  const repoTransport: Transport = transport.kind === 'tls' && !repository ? { kind: 'tls', identity: loadTlsIdentity(pkiDir(p), 'repository') } : transport;
  const tokenFile = str(p, 'api-tokens', process.env.DOPPEL_API_TOKENS ?? '');
  const auth = tokenFile ? ApiAuth.fromFile(tokenFile) : transport.kind === 'tls' ? ApiAuth.withTokens([]) : ApiAuth.open();
  if (!auth.enforced) log.warn('the API is open to anyone who can reach it (--insecure without --api-tokens)');
  else if (transport.kind === 'insecure') log.warn('API bearer tokens cross the network in plaintext (--insecure with --api-tokens)');
  const natsUrl = str(p, 'nats', process.env.DOPPEL_NATS_URL ?? 'nats://127.0.0.1:4222');
  const nc = await connectNats(natsUrl, 'doppel-coordinator', natsAuth(p, natsUrl, transport, log));
  const c = await Coordinator.start(
    {
      grpcListen: str(p, 'grpc', process.env.DOPPEL_GRPC_LISTEN ?? '127.0.0.1:7400'),
      natsReplicas: requireInt('--nats-replicas', Number(str(p, 'nats-replicas', process.env.DOPPEL_NATS_REPLICAS ?? '1')), 1, 5),
      httpListen: str(p, 'http', process.env.DOPPEL_HTTP_LISTEN ?? '127.0.0.1:7401'),
      ...(repository
        ? { repository }
        : {
            repoDir,
            repoListen: str(p, 'repo-listen', process.env.DOPPEL_REPO_LISTEN ?? '127.0.0.1:7402'),
            repoAdvertise: str(p, 'repo-advertise', process.env.DOPPEL_REPO_ADVERTISE ?? ''),
          }),
    },
    { nc, logger: log, transport, repoTransport, tokens: coordinatorTokenSigner(p), auth },
  );
  if (flag(p, 'ready-line')) console.log(JSON.stringify({ ready: true, grpc: c.grpcAddr, http: c.httpAddr, repository: c.repoAddr }));
  await untilSignal(log, async () => {
    await c.stop();
    await nc.drain();
  });
  return 0;
}

export const UP_HELP = `doppel up: run a local fleet in the foreground until Ctrl-C.

Starts a private nats-server (random port, temporary store), a coordinator and
agents with the sim driver, each in its own process, and prints how to reach them.

  --agents N        number of agents (default 2: host-a, host-b)
  --memory-mib N    memory each agent offers to VMs (default: 75% of this machine's)`;

export async function upCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { agents: { type: 'string' }, 'memory-mib': { type: 'string' } });
  if (flag(p, 'help')) return void console.log(UP_HELP), 0;
  const n = int(p, 'agents', 2);
  const names = Array.from({ length: n }, (_, i) => `host-${String.fromCharCode(97 + (i % 26))}${i >= 26 ? Math.floor(i / 26) : ''}`);
  const fleet = await LocalFleet.start({ agents: names, mode: 'process', heartbeatMs: 1000, ...(p.values['memory-mib'] ? { agentMemoryMib: int(p, 'memory-mib', 0) } : {}) });
  console.log(`doppel fleet is up:
  NATS            ${fleet.nats.url}
  coordinator     gRPC ${fleet.grpcAddr}   HTTP http://${fleet.httpAddr}
  agents          ${names.join(', ')}
  logs            ${fleet.logDir}

In another shell:
  export DOPPEL_COORDINATOR=${fleet.grpcAddr}
  doppel hosts
  doppel vm create web --memory-mib 256 --dirty-rate 20000
  doppel clone web --wait
  doppel backup web --wait
  doppel backups

Ctrl-C stops everything.`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  console.log('stopping fleet…');
  await fleet.stop();
  return 0;
}

export const REPO_HELP = `doppel repo serve --dir DIR [--listen ADDR]: run a standalone backup repository.

The coordinator runs one in its own process by default; run this on a storage
host instead and start the coordinator with --repository ADDR.

  --dir DIR        the repository directory (created if missing)
  --listen ADDR    gRPC address (default 127.0.0.1:7402; port 0 picks one)
  --config FILE    settings file, 'name = value' per line (env DOPPEL_CONFIG)
  --pki DIR        mutual TLS: presents DIR/repository.pem (or --cert-name); only agent and
                   coordinator certificates may call it (env DOPPEL_PKI)
  --cert-name NAME, --insecure (plaintext, logged as a warning)
  --log-format json|pretty, --log-level LEVEL`;

export async function repoCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...LOG_OPTIONS,
    dir: { type: 'string' },
    listen: { type: 'string' },
    pki: { type: 'string' },
    'cert-name': { type: 'string' },
    insecure: { type: 'boolean' },
  });
  const sub = p.positionals[0];
  if (flag(p, 'help') || sub !== 'serve' || !str(p, 'dir')) return void console.log(REPO_HELP), flag(p, 'help') ? 0 : 2;
  const log = rootLogger('doppel-repository', p);
  const transport = daemonTransport(p, 'doppel repo serve', 'repository', log);
  const repo = await startRepositoryServer({ dir: path.resolve(str(p, 'dir')), listen: str(p, 'listen', '127.0.0.1:7402'), log, transport });
  if (flag(p, 'ready-line')) console.log(JSON.stringify({ ready: true, repository: repo.addr }));
  log.info({ addr: repo.addr, dir: str(p, 'dir') }, 'repository serving');
  await untilSignal(log, () => repo.stop());
  return 0;
}

export const ARRAY_HELP = `doppel array serve --dir DIR [--listen ADDR]: run a simulated storage array.

A stand-in for a SAN array that guests write directly (pass-through LUNs, iSCSI from inside the
guest): volumes with their own snapshot API, as a REST/JSON API and a raw block data path over plain
HTTP (it simulates an array on a storage network: no TLS). Agents reach it with their ArrayClient.
Routes: /v1/volumes, /v1/volumes/NAME/data, /v1/writes, /v1/snapshots, /v1/snapshots/ID/volumes/NAME/
data|allocated|diff, /v1/admin/faults (docs/decisions.md, "The simulated storage array").

  --dir DIR            where volumes and snapshots live (created if missing; reopened as it was)
  --listen ADDR        HOST:PORT (default 127.0.0.1:7403; port 0 picks one)
  --name NAME          the array's name in messages (default: the stored one, or 'array')
  --token-file F       every request needs 'Authorization: Bearer TOKEN', TOKEN the file's content
                       (one word of at least 16 characters)
  --insecure           allow a non-loopback --listen without --token-file (anyone who reaches it
                       can read and write every volume; logged as a warning)
  --refuse-snapshots   test fault: POST /v1/snapshots answers 409 FailedPreconditionError (can be
                       changed at run time with POST /v1/admin/faults {refuseSnapshots, unavailable})
  --ready-line         print {"ready":true,"url":"http://..."} on stdout once listening
  --config FILE        settings file, 'name = value' per line (env DOPPEL_CONFIG)
  --log-format json|pretty, --log-level LEVEL`;

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

function readTokenFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new NotFoundError(`cannot read the array token file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token)) throw new InvalidArgumentError(`${file}: the array token must be one word of at least 16 characters`);
  return token;
}

export async function arrayCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...LOG_OPTIONS,
    dir: { type: 'string' },
    listen: { type: 'string' },
    name: { type: 'string' },
    'token-file': { type: 'string' },
    insecure: { type: 'boolean' },
    'refuse-snapshots': { type: 'boolean' },
  });
  const sub = p.positionals[0];
  if (flag(p, 'help') || sub !== 'serve' || !str(p, 'dir')) return void console.log(ARRAY_HELP), flag(p, 'help') ? 0 : 2;
  const listen = str(p, 'listen', '127.0.0.1:7403');
  const host = listen.slice(0, listen.lastIndexOf(':'));
  const tokenFile = str(p, 'token-file');
  const insecure = flag(p, 'insecure') || process.env.DOPPEL_INSECURE === '1';
  if (!tokenFile && !isLoopback(host) && !insecure) {
    throw new InvalidArgumentError(`doppel array serve: listening on ${host} needs --token-file F (or --insecure to let anyone who reaches it read and write every volume)`);
  }
  const log = rootLogger('doppel-array', p);
  if (!tokenFile && !isLoopback(host)) log.warn('the array is open to anyone who can reach it (--insecure without --token-file)');
  else if (tokenFile && !isLoopback(host)) log.warn('the array token crosses the network in plaintext (plain HTTP)');
  const name = str(p, 'name');
  const array = await startArrayServer({
    dir: path.resolve(str(p, 'dir')),
    listen,
    log,
    ...(name ? { name } : {}),
    ...(tokenFile ? { token: readTokenFile(tokenFile) } : {}),
    refuseSnapshots: flag(p, 'refuse-snapshots'),
  });
  if (flag(p, 'ready-line')) console.log(JSON.stringify({ ready: true, url: array.url }));
  await untilSignal(log, () => array.close());
  return 0;
}
