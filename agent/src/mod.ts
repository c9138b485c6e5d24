/** The agent package's public face. The start-up code picks the driver here. */
import { InvalidArgumentError } from '../../shared/src/mod.js';
import type { HypervisorDriver } from './drivers/driver.js';
import { SimDriver, type SimDriverOptions } from './drivers/sim/sim-driver.js';
import { QemuDriver } from './drivers/qemu/qemu-driver.js';
import type { CompiledAgentOptions } from './options.js';

export { Agent, type AgentDeps } from './agent.js';
export { compileAgentOptions, type AgentOptions, type CompiledAgentOptions, type QemuAgentOptions, DRIVERS } from './options.js';
export type { HypervisorDriver, DriverVm } from './drivers/driver.js';
export { SimDriver, type SimDriverOptions } from './drivers/sim/sim-driver.js';
export { killQemusUnder, QemuDriver, type QemuDriverOptions } from './drivers/qemu/qemu-driver.js';
export { QemuVm } from './drivers/qemu/qemu-vm.js';
export { ArrayClient, type ArrayClientOptions } from './array/client.js';

/**
 * The only place that maps a driver name to an implementation. `dataDir` holds the host's VMs (they persist
 * across restarts); `datastoreDir` is where disk layers live, shared by hosts given the same one.
 */
export function createDriver(name: string, opts: SimDriverOptions & { qemu?: CompiledAgentOptions['qemu'] }): HypervisorDriver {
  switch (name) {
    case 'sim':
      return new SimDriver(opts);
    case 'qemu': {
      if (opts.array) throw new InvalidArgumentError('bypass volumes (--array) are not available on the qemu driver');
      const q = opts.qemu ?? { boot: null, accel: 'auto', binary: 'qemu-system-x86_64' };
      return new QemuDriver({
        dataDir: opts.dataDir,
        ...(opts.datastoreDir ? { datastoreDir: opts.datastoreDir } : {}),
        boot: q.boot,
        ...(q.accel !== 'auto' ? { accel: q.accel } : {}),
        binary: q.binary,
        ...(opts.log ? { log: opts.log } : {}),
      });
    }
    default:
      throw new InvalidArgumentError(`unknown driver '${name}'`);
  }
}
