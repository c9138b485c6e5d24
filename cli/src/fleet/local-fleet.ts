/**
 * A private local fleet: its own nats-server, a coordinator and agents. The
 * components run as child processes (`doppel up`, the demo, the bench: each
 * agent gets its own process and event loop, as on real hosts) or inside this
 * process (tests, where a restart must be quick to script).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectNats, silentLogger, UnavailableError, type Logger, type NatsConnection } from '../../../shared/src/mod.js';
import { Agent, compileAgentOptions, createDriver } from '../../../agent/src/mod.js';
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
  /** All agents mount one datastore (as hosts on shared storage do): clones get overlays instead of disk copies. */
  sharedDatastore?: boolean;
  /** The coordinator's repository directory (default: `repo` in the fleet's temp dir). */
  repoDir?: string;
  /** Use this external repository address instead of one inside the coordinator. */
  repository?: string;
  logger?: Logger;
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
  private readonly dataRoot: Promise<string>;

  private constructor(
    readonly nats: NatsServerHandle,
    private readonly opts: LocalFleetOptions,
  ) {
    this.agents = opts.agents ?? ['host-a', 'host-b'];
    this.mode = opts.mode ?? 'process';
    this.dataRoot = mkdtemp(path.join(os.tmpdir(), 'doppel-fleet-'));
  }

  static async start(opts: LocalFleetOptions = {}): Promise<LocalFleet> {
    const nats = await startNatsServer();
    const fleet = new LocalFleet(nats, opts);
    try {
      fleet.logDir = opts.logDir ?? path.join(await fleet.dataRoot, 'logs');
      await mkdir(fleet.logDir, { recursive: true });
      await fleet.startCoordinator();
      for (const host of fleet.agents) await fleet.startAgent(host);
      await fleet.waitHosts(fleet.agents);
    } catch (err) {
      await fleet.stop();
      throw err;
    }
    return fleet;
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
      const nc = await connectNats(this.nats.url, 'doppel-coordinator');
      // A restarted coordinator serves its repository on the same port: running jobs hold its address.
      const repo = this.opts.repository ? { repository: this.opts.repository } : { repoDir, repoListen: this.repoAddr || '127.0.0.1:0' };
      const c = await Coordinator.start(
        { grpcListen: '127.0.0.1:0', httpListen: '127.0.0.1:0', ...repo },
        { nc, logger: this.logger() },
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
    ]);
    this.repoAddr = String(ready.repository);
    this.setCoordinator(String(ready.grpc), String(ready.http), { name: 'coordinator', stop });
  }

  private setCoordinator(grpcAddr: string, httpAddr: string, c: Component): void {
    this.coordinator = c;
    this.grpcAddr = grpcAddr;
    this.httpAddr = httpAddr;
    this.client?.close();
    this.client = new CoordinatorClient(grpcAddr);
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

  async startAgent(host: string, overrides: { memoryMib?: number } = {}): Promise<void> {
    const memoryMib = overrides.memoryMib ?? this.opts.agentMemoryMib;
    const dataDir = path.join(await this.dataRoot, host);
    const datastoreDir = this.opts.sharedDatastore ? path.join(await this.dataRoot, 'shared-datastore') : undefined;
    if (this.mode === 'in-process') {
      const nc: NatsConnection = await connectNats(this.nats.url, `doppel-agent-${host}`);
      const opts = compileAgentOptions({
        host,
        dataDir,
        natsUrl: this.nats.url,
        heartbeatMs: this.heartbeatMs,
        allowFaultInjection: this.opts.allowFaultInjection ?? false,
        ...(memoryMib ? { memoryMib } : {}),
      });
      const driver = createDriver('sim', { dataDir: opts.dataDir, ...(datastoreDir ? { datastoreDir } : {}) });
      const agent = await Agent.start(opts, { driver, logger: this.logger(), nc });
      this.agentObjects.set(host, agent);
      this.components.push({ name: host, stop: () => agent.stop().finally(() => nc.close()) });
      return;
    }
    const args = ['agent', '--host', host, '--listen', '127.0.0.1:0', '--data', dataDir, '--nats', this.nats.url, '--driver', 'sim', '--heartbeat-ms', String(this.heartbeatMs)];
    if (this.opts.allowFaultInjection) args.push('--allow-fault-injection');
    if (memoryMib) args.push('--memory-mib', String(memoryMib));
    if (datastoreDir) args.push('--datastore', datastoreDir);
    const { stop, kill } = await this.spawnChild(host, args);
    this.components.push({ name: host, stop, kill });
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

  /** Kills an agent's process outright (process mode), as a host that dies: no last heartbeat. */
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
      const hosts = await this.client.hosts().catch(() => []);
      const up = new Set(hosts.filter((h) => h.state === 'up').map((h) => h.name));
      if (names.every((n) => up.has(n))) return;
      if (Date.now() > end) throw new UnavailableError(`hosts ${names.filter((n) => !up.has(n)).join(', ')} did not come up`);
      await sleep(50);
    }
  }

  async stop({ keepLogs = false } = {}): Promise<void> {
    this.client?.close();
    for (const c of [...this.components].reverse()) await c.stop().catch(() => undefined);
    this.components.length = 0;
    await this.coordinator?.stop().catch(() => undefined);
    await this.nats.stop();
    const root = await this.dataRoot;
    if (!keepLogs) await rm(root, { recursive: true, force: true });
  }
}
