/**
 * A private local fleet: its own nats-server, a coordinator and agents. The
 * components run as child processes (`doppel up`, the demo, the bench: each
 * agent gets its own process and event loop, as on real hosts) or inside this
 * process (tests, where a restart must be quick to script).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  INSECURE,
  StreamTokenSigner,
  StreamTokenVerifier,
  COORDINATOR_NATS_USER,
  agentInboxPrefix,
  agentNatsUser,
  agentUser,
  connectNats,
  coordinatorUser,
  natsAuthorizationConfig,
  initPki,
  issueCert,
  loadTlsIdentity,
  pkiFiles,
  silentLogger,
  UnavailableError,
  type Logger,
  type NatsAuth,
  type NatsConnection,
  type Transport,
} from '../../../shared/src/mod.js';
import { ApiAuth } from '../../../coordinator/src/api/auth.js';
import { Agent, ArrayClient, compileAgentOptions, createDriver, killQemusUnder, type QemuAgentOptions } from '../../../agent/src/mod.js';
import { startArrayServer, type ArrayServer } from '../../../array/src/mod.js';
import { Coordinator } from '../../../coordinator/src/mod.js';
import { startNatsServer, type NatsServerHandle } from './nats-server.js';
import { CoordinatorClient } from '../client.js';

export interface LocalFleetOptions {
  agents?: string[];
  mode?: 'process' | 'in-process';
  heartbeatMs?: number;
  allowFaultInjection?: boolean;
  /** Memory capacity each agent offers (MiB). */
  agentMemoryMib?: number;
  /** Where child processes write their logs (process mode); a temp dir by default. */
  logDir?: string;
  /**
   * All agents (true), or the agents named, mount one datastore (as hosts on shared storage do): clones between them
   * get overlays instead of disk copies. The others keep their own.
   */
  sharedDatastore?: boolean | readonly string[];
  /** The coordinator's repository directory (default: `repo` in the fleet's temp dir). */
  repoDir?: string;
  /** Use this external repository address instead of one inside the coordinator. */
  repository?: string;
  /**
   * Mutual TLS everywhere, with a fleet PKI made in the fleet's temp dir (the agents' certificates
   * name 127.0.0.1). Off by default: a local fleet is plaintext, but its streams always carry tokens.
   */
  tls?: boolean;
  /** NATS with per-role users and subject permissions ('doppel nats-auth'): agents get only their own subjects. Default: as `tls`. */
  natsAuth?: boolean;
  /** API bearer tokens; the API then requires a token or an admin/reader certificate. */
  apiTokens?: { role: 'admin' | 'reader'; token: string }[];
  logger?: Logger;
  /** A simulated storage array (`doppel array serve`, in this process) that every agent uses for bypass volumes (seed 001). */
  array?: boolean;
  /**
   * Per host: its cluster (`--cluster`, default 'default') and its datastore by name: hosts given the same name
   * mount one directory, `datastorePath(name)` (this overrides sharedDatastore for the host).
   */
  hosts?: Record<string, { cluster?: string; datastore?: string }>;
  /** Every agent runs the qemu driver with these boot data and accelerator (default: the sim driver). */
  qemu?: QemuAgentOptions;
}

/** A local fleet's keys: the PKI directory (TLS) and the stream-token pair, both in its temp dir. */
interface FleetKeys {
  dir: string;
  tokenKey: string;
  tokenPub: string;
}

interface Component {
  name: string;
  stop(): Promise<void>;
  /** Process mode only: SIGKILL, as a host that dies. */
  kill?: () => Promise<void>;
}

export class LocalFleet {
  client!: CoordinatorClient;
  grpcAddr = '';
  httpAddr = '';
  /** The backup repository's gRPC address. */
  repoAddr = '';
  logDir = '';
  private readonly components: Component[] = [];
  private coordinator: Component | undefined;
  readonly agents: string[];
  readonly mode: 'process' | 'in-process';
  /** In-process agents, by host name, for tests that look inside. */
  readonly agentObjects = new Map<string, Agent>();
  /** The storage array, when started with `array`. */
  array: ArrayServer | undefined;
  /** The fleet's temp dir: each agent's data directory is `<dataRoot>/<host>`. */
  readonly dataRoot: Promise<string>;
  private keys: FleetKeys | undefined;
  /** NATS credentials by user name (natsAuth). */
  readonly natsUsers = new Map<string, { user: string; password: string }>();

  private constructor(
    readonly nats: NatsServerHandle,
    private readonly opts: LocalFleetOptions,
  ) {
    this.agents = opts.agents ?? ['host-a', 'host-b'];
    this.mode = opts.mode ?? 'process';
    this.dataRoot = mkdtemp(path.join(os.tmpdir(), 'doppel-fleet-'));
  }

  static async start(opts: LocalFleetOptions = {}): Promise<LocalFleet> {
    const agents = opts.agents ?? ['host-a', 'host-b'];
    // A TLS fleet is a production-like fleet: NATS users too, unless asked otherwise.
    const natsAuth = opts.natsAuth ?? opts.tls ?? false;
    const natsUsers = natsAuth ? [coordinatorUser(), ...agents.map((h) => agentUser(h))] : [];
    let authDir = '';
    if (natsAuth) {
      authDir = await mkdtemp(path.join(os.tmpdir(), 'doppel-nats-auth-'));
      await writeFile(path.join(authDir, 'auth.conf'), natsAuthorizationConfig(natsUsers), { mode: 0o600 });
    }
    const nats = await startNatsServer(authDir ? { configFile: path.join(authDir, 'auth.conf') } : {});
    if (authDir) await rm(authDir, { recursive: true, force: true });
    const fleet = new LocalFleet(nats, opts);
    for (const u of natsUsers) fleet.natsUsers.set(u.user, { user: u.user, password: u.password });
    try {
      fleet.logDir = opts.logDir ?? path.join(await fleet.dataRoot, 'logs');
      await mkdir(fleet.logDir, { recursive: true });
      await fleet.makeKeys();
      if (opts.array) fleet.array = await startArrayServer({ dir: path.join(await fleet.dataRoot, 'array'), listen: '127.0.0.1:0', name: 'array-1' });
      await fleet.startCoordinator();
      for (const host of fleet.agents) await fleet.startAgent(host);
      await fleet.waitHosts(fleet.agents);
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
  }

  /** The stream-token key pair, and with TLS a fleet CA and a certificate for every component. */
  private async makeKeys(): Promise<void> {
    const dir = path.join(await this.dataRoot, 'pki');
    if (this.opts.tls) {
      await initPki(dir);
      await issueCert(dir, 'coordinator', { role: 'coordinator', ips: ['127.0.0.1'] });
      await issueCert(dir, 'repository', { role: 'repository', ips: ['127.0.0.1'] });
      await issueCert(dir, 'admin', { role: 'admin' });
      for (const host of this.agents) await issueCert(dir, host, { role: 'agent', ips: ['127.0.0.1'] });
    } else {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const { privateKeyPem, publicKeyPem } = StreamTokenSigner.generate();
      const f = pkiFiles(dir, 'x');
      await writeFile(f.tokenKey, privateKeyPem, { mode: 0o600 });
      await writeFile(f.tokenPub, publicKeyPem);
    }
    const f = pkiFiles(dir, 'x');
    this.keys = { dir, tokenKey: f.tokenKey, tokenPub: f.tokenPub };
  }

  /** Signs a data-plane stream token with the fleet coordinator's key (benchmarks and tests that stream directly). */
  signStreamToken(claims: Parameters<StreamTokenSigner['sign']>[0], ttlMs?: number): string {
    return StreamTokenSigner.fromFile(this.keys!.tokenKey).sign(claims, ttlMs);
  }

  /** The PKI directory of a TLS fleet ('' without TLS): clients use `admin`. */
  get pkiDir(): string {
    return this.opts.tls ? (this.keys?.dir ?? '') : '';
  }

  private transport(name: string): Transport {
    return this.opts.tls ? { kind: 'tls', identity: loadTlsIdentity(this.keys!.dir, name) } : INSECURE;
  }

  /** NATS credentials of a component (coordinator or an agent's host name); none without natsAuth. */
  natsCreds(component: string): NatsAuth {
    const u = this.natsUsers.get(component === 'coordinator' ? COORDINATOR_NATS_USER : agentNatsUser(component));
    return u ? { user: u.user, password: u.password } : {};
  }

  /** Command-line security flags of a child process presenting certificate `name`. */
  private async securityArgs(name: string, tokenKey: string): Promise<string[]> {
    const keys = this.keys!;
    const args = [...(this.opts.tls ? ['--pki', keys.dir, '--cert-name', name] : ['--insecure']), '--stream-token-key', tokenKey];
    const creds = this.natsCreds(name);
    if (creds.user) {
      const file = path.join(keys.dir, `nats-${name}.json`);
      await writeFile(file, JSON.stringify({ user: creds.user, password: creds.password }), { mode: 0o600 });
      args.push('--nats-creds', file);
    }
    if (name === 'coordinator' && this.opts.apiTokens) {
      const file = path.join(keys.dir, 'api-tokens');
      await writeFile(file, this.opts.apiTokens.map((t) => `${t.role} ${t.token}`).join('\n') + '\n', { mode: 0o600 });
      args.push('--api-tokens', file);
    }
    return args;
  }

  private apiAuth(): ApiAuth {
    if (this.opts.apiTokens) return ApiAuth.withTokens(this.opts.apiTokens);
    return this.opts.tls ? ApiAuth.withTokens([]) : ApiAuth.open();
  }

  private get heartbeatMs(): number {
    return this.opts.heartbeatMs ?? 500;
  }

  /** The backup repository's directory. */
  async repoDir(): Promise<string> {
    return this.opts.repoDir ?? path.join(await this.dataRoot, 'repo');
  }

  async startCoordinator(): Promise<void> {
    const repoDir = await this.repoDir();
    if (this.mode === 'in-process') {
      const nc = await connectNats(this.nats.url, 'doppel-coordinator', this.natsCreds('coordinator'));
      // A restarted coordinator serves its repository on the same port: running jobs hold its address.
      const repo = this.opts.repository ? { repository: this.opts.repository } : { repoDir, repoListen: this.repoAddr || '127.0.0.1:0' };
      const c = await Coordinator.start(
        { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', ...repo },
        {
          nc,
          logger: this.logger(),
          transport: this.transport('coordinator'),
          repoTransport: this.transport('repository'),
          tokens: StreamTokenSigner.fromFile(this.keys!.tokenKey),
          auth: this.apiAuth(),
        },
      );
      this.repoAddr = c.repoAddr;
      this.setCoordinator(c.grpcAddr, c.httpAddr, { name: 'coordinator', stop: () => c.stop().finally(() => nc.close()) });
      return;
    }
    const { ready, stop } = await this.spawnChild('coordinator', [
      'coordinator',
      '--nats',
      this.nats.url,
      '--grpc',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      ...(this.opts.repository ? ['--repository', this.opts.repository] : ['--repo-dir', repoDir, '--repo-listen', this.repoAddr || '127.0.0.1:0']),
      ...(await this.securityArgs('coordinator', this.keys!.tokenKey)),
    ]);
    this.repoAddr = String(ready.repository);
    this.setCoordinator(String(ready.grpc), String(ready.http), { name: 'coordinator', stop });
  }

  private setCoordinator(grpcAddr: string, httpAddr: string, c: Component): void {
    this.coordinator = c;
    this.grpcAddr = grpcAddr;
    this.httpAddr = httpAddr;
    this.client?.close();
    const token = this.opts.apiTokens?.find((t) => t.role === 'admin')?.token;
    this.client = new CoordinatorClient(grpcAddr, {
      ...(this.opts.tls ? { identity: loadTlsIdentity(this.keys!.dir, 'admin') } : {}),
      ...(token ? { token } : {}),
    });
  }

  /** Stops the coordinator and starts a new one against the same NATS (its state lives there). */
  async restartCoordinator(): Promise<void> {
    await this.coordinator?.stop();
    await this.startCoordinator();
  }

  async stopCoordinator(): Promise<void> {
    await this.coordinator?.stop();
    this.coordinator = undefined;
  }

  /**
   * Starts an agent. `process: true` runs it as a child process even in an in-process fleet (so a test can kill
   * it outright with killAgent while reading the other agents' objects).
   */
  async startAgent(host: string, overrides: { memoryMib?: number; process?: boolean } = {}): Promise<void> {
    const memoryMib = overrides.memoryMib ?? this.opts.agentMemoryMib;
    const dataDir = path.join(await this.dataRoot, host);
    const shared = this.opts.sharedDatastore;
    const sharesStore = shared === true || (Array.isArray(shared) && shared.includes(host));
    const named = this.opts.hosts?.[host]?.datastore;
    const datastoreDir = named ? await this.datastorePath(named) : sharesStore ? path.join(await this.dataRoot, 'shared-datastore') : undefined;
    const cluster = this.opts.hosts?.[host]?.cluster;
    if (this.mode === 'in-process' && overrides.process !== true) {
      const nc: NatsConnection = await connectNats(this.nats.url, `doppel-agent-${host}`, {
        ...this.natsCreds(host),
        inboxPrefix: agentInboxPrefix(host),
      });
      const opts = compileAgentOptions({
        host,
        ...(cluster ? { cluster } : {}),
        dataDir,
        natsUrl: this.nats.url,
        heartbeatMs: this.heartbeatMs,
        allowFaultInjection: this.opts.allowFaultInjection ?? false,
        ...(memoryMib ? { memoryMib } : {}),
        ...(this.opts.qemu ? { driver: 'qemu', qemu: this.opts.qemu } : {}),
      });
      const array = this.array ? new ArrayClient({ url: this.array.url }) : undefined;
      const driver = createDriver(opts.driver, {
        dataDir: opts.dataDir,
        ...(datastoreDir ? { datastoreDir } : {}),
        ...(array ? { array } : {}),
        log: this.logger(),
        qemu: opts.qemu,
      });
      const agent = await Agent.start(opts, {
        ...(array ? { array } : {}),
        driver,
        logger: this.logger(),
        nc,
        transport: this.transport(host),
        tokens: StreamTokenVerifier.fromFile(this.keys!.tokenPub, host),
      });
      this.agentObjects.set(host, agent);
      this.components.push({ name: host, stop: () => agent.stop().finally(() => nc.close()) });
      return;
    }
    const args = ['agent', '--host', host, '--listen', '127.0.0.1:0', '--data', dataDir, '--nats', this.nats.url, '--driver', this.opts.qemu ? 'qemu' : 'sim', '--heartbeat-ms', String(this.heartbeatMs)];
    const q = this.opts.qemu;
    if (q?.kernel) args.push('--qemu-kernel', q.kernel);
    if (q?.initrd) args.push('--qemu-initrd', q.initrd);
    if (q?.append) args.push('--qemu-append', q.append);
    if (q?.accel) args.push('--qemu-accel', q.accel);
    if (this.opts.allowFaultInjection) args.push('--allow-fault-injection');
    if (memoryMib) args.push('--memory-mib', String(memoryMib));
    if (datastoreDir) args.push('--datastore', datastoreDir);
    if (cluster) args.push('--cluster', cluster);
    if (this.array) args.push('--array', this.array.url);
    args.push(...(await this.securityArgs(host, this.keys!.tokenPub)));
    const { stop, kill } = await this.spawnChild(host, args);
    this.components.push({ name: host, stop, kill });
  }

  /** The directory of the fleet's datastore `name` (see the `hosts` option): an absolute path, as clusters list them. */
  async datastorePath(name: string): Promise<string> {
    return path.join(await this.dataRoot, 'datastores', name);
  }

  /** Stops one agent (cleanly: it says it is stopping, so it is down at once). */
  async stopAgent(host: string): Promise<void> {
    const i = this.components.findIndex((c) => c.name === host);
    if (i < 0) return;
    const [c] = this.components.splice(i, 1);
    this.agentObjects.delete(host);
    await c!.stop();
  }

  private logger(): Logger {
    return this.opts.logger ?? silentLogger();
  }

  /** Kills an agent's process outright (one running as a child process), as a host that dies: no last heartbeat. */
  async killAgent(host: string): Promise<void> {
    const i = this.components.findIndex((c) => c.name === host);
    const c = this.components[i];
    if (!c?.kill) throw new Error(`agent ${host} is not a child process`);
    this.components.splice(i, 1);
    await c.kill();
  }

  private async spawnChild(
    name: string,
    args: string[],
  ): Promise<{ ready: Record<string, unknown>; stop: () => Promise<void>; kill: () => Promise<void> }> {
    const here = fileURLToPath(import.meta.url);
    const main = path.join(path.dirname(here), '..', `main${path.extname(here)}`);
    // DOPPEL_CHILD_NODE_ARGS adds node flags to the children only (e.g. --cpu-prof for profiling an agent).
    const extra = (process.env.DOPPEL_CHILD_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const child: ChildProcess = spawn(process.execPath, [...process.execArgv, ...extra, main, ...args, '--ready-line'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, DOPPEL_LOG_FORMAT: 'json' },
    });
    const log = createWriteStream(path.join(this.logDir, `${name}.log`));
    child.stderr?.pipe(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const rl = createInterface({ input: child.stdout! });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new UnavailableError(`${name} did not start within 30 s (see ${this.logDir}/${name}.log)`));
      }, 30_000);
      rl.on('line', (line) => {
        try {
          const v = JSON.parse(line) as Record<string, unknown>;
          if (v.ready) {
            clearTimeout(timer);
            resolve(v);
          }
        } catch {
          // not the ready line
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new UnavailableError(`${name} exited with code ${code} before it was ready (see ${this.logDir}/${name}.log)`));
      });
    });
    const stop = async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
      }
      log.end();
    };
    const kill = async () => {
      if (child.exitCode === null) {
        child.kill('SIGKILL');
        await exited;
      }
      log.end();
    };
    return { ready, stop, kill };
  }

  /** Waits until the coordinator lists these hosts as up. */
  async waitHosts(names: string[], timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      let lastError = '';
      const hosts = await this.client.hosts().catch((err: unknown) => {
        lastError = (err as Error).message;
        return [];
      });
      const up = new Set(hosts.filter((h) => h.state === 'up').map((h) => h.name));
      if (names.every((n) => up.has(n))) return;
      if (Date.now() > end) {
        throw new UnavailableError(`hosts ${names.filter((n) => !up.has(n)).join(', ')} did not come up${lastError ? ` (${lastError})` : ''}`);
      }
      await sleep(50);
    }
  }

  async stop({ keepLogs = false } = {}): Promise<void> {
    this.client?.close();
    for (const c of [...this.components].reverse()) await c.stop().catch(() => undefined);
    this.components.length = 0;
    await this.coordinator?.stop().catch(() => undefined);
    await this.array?.close().catch(() => undefined);
    await this.nats.stop();
    const root = await this.dataRoot;
    // QEMUs outlive their agents by design; a private fleet's die with it (its data directories are removed).
    if (this.opts.qemu) for (const entry of await readdir(root).catch(() => [])) killQemusUnder(path.join(root, entry));
    if (!keepLogs) await rm(root, { recursive: true, force: true });
  }
}
