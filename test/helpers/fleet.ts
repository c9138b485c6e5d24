/** Test fleets: a real nats-server on a random port, real gRPC servers on 127.0.0.1:0. */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { LocalFleet, type LocalFleetOptions } from '../../cli/src/fleet/local-fleet.js';
import type { DriverVm } from '../../agent/src/mod.js';

export async function startTestFleet(opts: LocalFleetOptions = {}): Promise<LocalFleet> {
  return LocalFleet.start({ mode: 'in-process', heartbeatMs: 500, allowFaultInjection: true, agentMemoryMib: 4096, ...opts });
}

export function driverVm(fleet: LocalFleet, host: string, vmId: string): DriverVm {
  const agent = fleet.agentObjects.get(host);
  assert.ok(agent, `agent ${host} runs in this process`);
  const vm = agent.driver.get(vmId);
  assert.ok(vm, `vm ${vmId} exists on ${host}`);
  return vm;
}

/** The source keeps running: its state says so and its guest keeps writing. */
export async function assertGuestRunning(fleet: LocalFleet, host: string, vmId: string): Promise<void> {
  const vm = driverVm(fleet, host, vmId);
  assert.equal(vm.state, 'running');
  const w0 = vm.guestWrites();
  await sleep(100);
  assert.ok(vm.guestWrites() > w0, `guest of ${vmId} is still writing`);
}

/** Waits until the VM lists (fed by heartbeats) show a condition. */
export async function eventually<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** The doppel error code a call ends with ('OK' when it succeeds): for asserting refusals. */
export function codeOf(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'OK',
    (e: { code?: string }) => e.code ?? 'UNKNOWN',
  );
}
