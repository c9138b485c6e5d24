/** The agent package's public face. The start-up code picks the driver here. */
import { InvalidArgumentError } from '../../shared/src/mod.js';
import type { HypervisorDriver } from './drivers/driver.js';
import { SimDriver, type SimDriverOptions } from './drivers/sim/sim-driver.js';

export { Agent, type AgentDeps } from './agent.js';
export { compileAgentOptions, type AgentOptions, type CompiledAgentOptions, DRIVERS } from './options.js';
export type { HypervisorDriver, DriverVm } from './drivers/driver.js';
export { SimDriver, type SimDriverOptions } from './drivers/sim/sim-driver.js';
export { ArrayClient, type ArrayClientOptions } from './array/client.js';

/**
 * The only place that maps a driver name to an implementation. `dataDir` holds the host's VMs (they persist
 * across restarts); `datastoreDir` is where disk layers live, shared by hosts given the same one.
 */
export function createDriver(name: string, opts: SimDriverOptions): HypervisorDriver {
  switch (name) {
    case 'sim':
      return new SimDriver(opts);
    default:
      throw new InvalidArgumentError(`unknown driver '${name}'`);
  }
}
