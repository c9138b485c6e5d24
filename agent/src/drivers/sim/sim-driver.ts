/** The simulated hypervisor: the embedded default driver. */
import { newId, AlreadyExistsError } from '../../../../shared/src/mod.js';
import type { VmSpec } from '../../../../shared/src/mod.js';
import type { CreateVmOptions, HypervisorDriver } from '../driver.js';
import { SimVm } from './sim-vm.js';

export class SimDriver implements HypervisorDriver {
  readonly name = 'sim';
  private readonly vms = new Map<string, SimVm>();

  async create(spec: VmSpec, opts: CreateVmOptions = {}): Promise<SimVm> {
    for (const vm of this.vms.values()) {
      if (vm.spec.name === spec.name) throw new AlreadyExistsError(`a VM named '${spec.name}' already exists on this host`);
    }
    const vm = new SimVm(newId('vm'), spec, opts.cloneOf ?? '', opts.incoming === true);
    this.vms.set(vm.id, vm);
    if (!opts.incoming) await vm.run();
    return vm;
  }

  get(id: string): SimVm | undefined {
    return this.vms.get(id);
  }

  list(): SimVm[] {
    return [...this.vms.values()];
  }

  async destroy(id: string): Promise<boolean> {
    const vm = this.vms.get(id);
    if (!vm) return false;
    this.vms.delete(id);
    await vm.stop();
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.vms.keys()].map((id) => this.destroy(id)));
  }
}
