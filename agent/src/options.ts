/** Agent options: AgentOptions (what a user may give) -> compileAgentOptions() -> CompiledAgentOptions. */
import os from 'node:os';
import path from 'node:path';
import { InvalidArgumentError, requireInt, requireName, type Capacity } from '../../shared/src/mod.js';

export interface AgentOptions {
  host: string;
  /** The cluster this host belongs to (seed 003); default 'default'. */
  cluster?: string;
  /** gRPC data-plane listen address, host:port (port 0 picks a free one). */
  listen?: string;
  /** Address other agents use to reach this one; defaults to the bound listen address. */
  advertise?: string;
  dataDir?: string;
  natsUrl?: string;
  driver?: string;
  memoryMib?: number;
  cpus?: number;
  maxVms?: number;
  heartbeatMs?: number;
  /** Honour the test-only `fault` field of clone requests. Off in production. */
  allowFaultInjection?: boolean;
  cloneDeadlineMs?: number;
  /** Longest a source may stay suspended for a switchover before the clone is abandoned. */
  switchoverTimeoutMs?: number;
  /** qemu driver: the guests' boot data and the accelerator. */
  qemu?: QemuAgentOptions;
}

export interface QemuAgentOptions {
  /** Direct kernel boot of every VM this host creates: kernel, initrd and command line; no kernel: firmware boot from disk 0. */
  kernel?: string;
  initrd?: string;
  append?: string;
  /** kvm, tcg, or auto (default: KVM when a probe guest runs under it, else TCG). */
  accel?: string;
  /** The QEMU binary (default qemu-system-x86_64, env DOPPEL_QEMU_BINARY). */
  binary?: string;
}

export interface CompiledAgentOptions {
  host: string;
  cluster: string;
  listen: string;
  advertise: string;
  dataDir: string;
  natsUrl: string;
  driver: Driver;
  /** Only for the qemu driver. */
  qemu: { boot: { kernel: string; initrd: string; append: string } | null; accel: 'kvm' | 'tcg' | 'auto'; binary: string };
  capacity: Capacity;
  heartbeatMs: number;
  allowFaultInjection: boolean;
  cloneDeadlineMs: number;
  switchoverTimeoutMs: number;
}

export const DRIVERS = ['sim', 'qemu'] as const;
export type Driver = (typeof DRIVERS)[number];

function compileQemu(o: QemuAgentOptions | undefined): CompiledAgentOptions['qemu'] {
  const accel = o?.accel || 'auto';
  if (accel !== 'kvm' && accel !== 'tcg' && accel !== 'auto') throw new InvalidArgumentError(`QEMU accelerator must be kvm, tcg or auto (got '${accel}')`);
  const abs = (what: string, p: string | undefined): string => (p ? path.resolve(p) : '');
  const kernel = abs('kernel', o?.kernel);
  if (!kernel && (o?.initrd || o?.append)) throw new InvalidArgumentError('--qemu-initrd and --qemu-append need --qemu-kernel');
  return {
    boot: kernel ? { kernel, initrd: abs('initrd', o?.initrd), append: o?.append ?? '' } : null,
    accel,
    binary: o?.binary || process.env.DOPPEL_QEMU_BINARY || 'qemu-system-x86_64',
  };
}

export function compileAgentOptions(o: AgentOptions): CompiledAgentOptions {
  const host = requireName('host name', o.host);
  const listen = o.listen ?? '127.0.0.1:0';
  if (!/^[^\s]+:\d+$/.test(listen)) throw new InvalidArgumentError(`listen address must be HOST:PORT (got '${listen}')`);
  const driver = (o.driver ?? 'sim') as Driver;
  if (!DRIVERS.includes(driver)) {
    throw new InvalidArgumentError(`driver '${driver}' is not available in this build (available: ${DRIVERS.join(', ')})`);
  }
  return {
    host,
    cluster: requireName('cluster name', o.cluster ?? 'default'),
    listen,
    advertise: o.advertise ?? '',
    dataDir: path.resolve(o.dataDir ?? path.join(os.tmpdir(), `doppel-agent-${host}`)),
    natsUrl: o.natsUrl ?? 'nats://127.0.0.1:4222',
    driver,
    qemu: compileQemu(o.qemu),
    capacity: {
      memoryMib: requireInt('memory capacity (MiB)', o.memoryMib ?? Math.floor((os.totalmem() / 2 ** 20) * 0.75), 1, 2 ** 30),
      cpus: requireInt('cpus', o.cpus ?? os.cpus().length, 1, 4096),
      maxVms: requireInt('max VMs', o.maxVms ?? 64, 1, 100_000),
    },
    heartbeatMs: requireInt('heartbeat interval (ms)', o.heartbeatMs ?? 2000, 50, 60_000),
    allowFaultInjection: o.allowFaultInjection ?? false,
    cloneDeadlineMs: requireInt('clone deadline (ms)', o.cloneDeadlineMs ?? 30 * 60_000, 1000, 24 * 3600_000),
    switchoverTimeoutMs: requireInt('switchover timeout (ms)', o.switchoverTimeoutMs ?? 10_000, 100, 600_000),
  };
}
