/**
 * Starts a private nats-server with JetStream on a random loopback port and a
 * temporary store, the way nats.js's own tests do. Used by `doppel up`, the
 * demo and the tests, so none of them touches a NATS server already running.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UnavailableError } from '../../../shared/src/mod.js';

export interface NatsServerHandle {
  url: string;
  port: number;
  storeDir: string;
  process: ChildProcess;
  /** Stops the server; `keepStore` leaves the store for a restart test. */
  stop(opts?: { keepStore?: boolean }): Promise<void>;
}

/** `configFile`: a nats-server configuration (e.g. with an authorization block); the flags here override its listen address and store. */
export async function startNatsServer(opts: { storeDir?: string; port?: number; configFile?: string } = {}): Promise<NatsServerHandle> {
  const storeDir = opts.storeDir ?? (await mkdtemp(path.join(os.tmpdir(), 'doppel-nats-')));
  const portsDir = await mkdtemp(path.join(os.tmpdir(), 'doppel-nats-ports-'));
  const bin = process.env.NATS_SERVER_BIN ?? 'nats-server';
  const args = [...(opts.configFile ? ['-c', opts.configFile] : []), '-a', '127.0.0.1', '-p', String(opts.port ?? -1), '-js', '-sd', storeDir, '--ports_file_dir', portsDir];
  const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (err) =>
      reject(new UnavailableError(`cannot start ${bin}: ${err.message} (run scripts/setup.sh to install it)`, { cause: err })),
    ),
  );
  const findPort = async (): Promise<number> => {
    for (let i = 0; i < 200; i++) {
      if (child.exitCode !== null) throw new UnavailableError(`nats-server exited early: ${stderr.trim()}`);
      const files = await readdir(portsDir).catch(() => [] as string[]);
      const f = files.find((n) => n.endsWith('.ports'));
      if (f) {
        const ports = JSON.parse(await readFile(path.join(portsDir, f), 'utf8')) as { nats?: string[] };
        const m = /:(\d+)$/.exec(ports.nats?.[0] ?? '');
        if (m) return Number(m[1]);
      }
      await sleep(25);
    }
    throw new UnavailableError(`nats-server did not report its port within 5 s: ${stderr.trim()}`);
  };
  let port: number;
  try {
    port = await Promise.race([findPort(), spawnError]);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const ownStore = opts.storeDir === undefined;
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    async stop({ keepStore = false } = {}) {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))]);
      }
      await rm(portsDir, { recursive: true, force: true });
      if (ownStore && !keepStore) await rm(storeDir, { recursive: true, force: true });
    },
  };
}
