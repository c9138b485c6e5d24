/**
 * VM identities across the fleet: new ones with a MAC no other VM has, checks of a MAC a user gives, and the
 * running VM that already answers to a MAC. The fleet's MACs come from the hosts' heartbeats (every VM the
 * registry knows, on hosts up or down: a down host's VMs come back with it). A MAC handed out is reserved
 * here until a heartbeat shows it (or a few minutes pass), so two creates or clones at once never get the
 * same one. The reservations live in memory: after a coordinator restart the heartbeats carry every VM
 * that exists, and a create that was in flight fails or shows up in them.
 */
import {
  AlreadyExistsError,
  DeadlineExceededError,
  ResourceExhaustedError,
  newIdentity,
  normalizeMac,
  type HostRecord,
  type VmIdentity,
  type VmInfo,
} from '../../shared/src/mod.js';

export interface IdentityAllocatorOptions {
  /** How long a MAC handed out stays reserved without showing up in a heartbeat (default 5 minutes). */
  reserveMs?: number;
  /** At most this many reservations at once (default 10,000). */
  maxReservations?: number;
}

interface Reservation {
  /** The VM it is for (a name), for the error a second claim gets. */
  vm: string;
  until: number;
}

export class IdentityAllocator {
  private readonly reserved = new Map<string, Reservation>();
  private readonly reserveMs: number;
  private readonly maxReservations: number;

  constructor(
    /** Every registered host with its VMs (the host registry's list). */
    private readonly hosts: () => Promise<HostRecord[]>,
    opts: IdentityAllocatorOptions = {},
  ) {
    this.reserveMs = opts.reserveMs ?? 5 * 60_000;
    this.maxReservations = opts.maxReservations ?? 10_000;
  }

  /** Every VM's MAC in the fleet, with the VM and its host. */
  private async fleetMacs(): Promise<Map<string, { vm: VmInfo; host: HostRecord }>> {
    const macs = new Map<string, { vm: VmInfo; host: HostRecord }>();
    for (const host of await this.hosts()) {
      for (const vm of host.vms) {
        // An agent older than identities reports none.
        const mac = (vm.identity as VmIdentity | undefined)?.mac;
        if (mac) macs.set(mac, { vm, host });
      }
    }
    return macs;
  }

  /** Drops reservations that expired or that a heartbeat now shows (the fleet list covers them from then on). */
  private prune(fleet: ReadonlyMap<string, unknown>, now: number): void {
    for (const [mac, r] of this.reserved) if (r.until <= now || fleet.has(mac)) this.reserved.delete(mac);
  }

  private reserve(mac: string, vm: string, now: number): void {
    if (this.reserved.size >= this.maxReservations) {
      throw new ResourceExhaustedError(
        `${this.reserved.size} MAC addresses handed out in the last ${Math.round(this.reserveMs / 1000)} s are not yet seen in a heartbeat; try again shortly`,
      );
    }
    this.reserved.set(mac, { vm, until: now + this.reserveMs });
  }

  /** A new identity for VM `vm` (a name), with a MAC no VM in the fleet has or was just given; reserved until seen. */
  async allocate(vm: string, hostname: string): Promise<VmIdentity> {
    const fleet = await this.fleetMacs();
    const now = Date.now();
    this.prune(fleet, now);
    const identity = newIdentity(hostname, new Set([...fleet.keys(), ...this.reserved.keys()]));
    this.reserve(identity.mac, vm, now);
    return identity;
  }

  /**
   * Checks that a MAC a user gives is free and reserves it for VM `vm`; returns it in canonical form. Refused
   * with AlreadyExistsError naming the VM that has it (or is being made with it).
   */
  async claim(mac: string, vm: string): Promise<string> {
    const m = normalizeMac(mac);
    const fleet = await this.fleetMacs();
    const now = Date.now();
    this.prune(fleet, now);
    const user = fleet.get(m);
    if (user) {
      throw new AlreadyExistsError(`MAC address ${m} is already used by vm '${user.vm.name}' (${user.vm.id}) on host '${user.host.name}'`);
    }
    const r = this.reserved.get(m);
    if (r) throw new AlreadyExistsError(`MAC address ${m} was just given to vm '${r.vm}', which is being created`);
    this.reserve(m, vm, now);
    return m;
  }

  /**
   * Gives back a MAC whose VM was not made after all: the host refused, or could not be asked. A host that did
   * not answer in time (`err` a DeadlineExceededError) may still make the VM, so its MAC stays reserved.
   */
  release(mac: string, err?: unknown): void {
    if (err instanceof DeadlineExceededError) return;
    this.reserved.delete(mac);
  }

  /**
   * A running VM other than `exceptVmId` with this MAC, on a host that is up (a down host's VMs are not
   * known to run), or undefined.
   */
  async runningWithMac(mac: string, exceptVmId: string): Promise<{ vm: VmInfo; host: HostRecord } | undefined> {
    for (const host of await this.hosts()) {
      if (host.state !== 'up') continue;
      for (const vm of host.vms) {
        if (vm.id !== exceptVmId && vm.state === 'running' && (vm.identity as VmIdentity | undefined)?.mac === mac) return { vm, host };
      }
    }
    return undefined;
  }
}
