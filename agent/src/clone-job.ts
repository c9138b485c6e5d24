/**
 * Runs one live clone on the source host and reports it as events. The events
 * go into the JetStream stream, from which the coordinator keeps the job record,
 * so a coordinator restart in the middle of a clone loses nothing.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { fromServiceError, publishEvent, toDoppelError, type CloneStartArgs, type EventInput, type Logger } from '../../shared/src/mod.js';
import type { DriverVm } from './drivers/driver.js';
import type { DataPlaneClient } from './dataplane/client.js';
import { runPrecopy, type Fault } from './precopy/sender.js';

export interface CloneJobDeps {
  js: JetStreamClient;
  host: string;
  log: Logger;
  client: DataPlaneClient;
  deadlineMs: number;
  signal: AbortSignal;
}

export async function runCloneJob(vm: DriverVm, args: CloneStartArgs, deps: CloneJobDeps): Promise<void> {
  const { js, host, client } = deps;
  const log = deps.log.child({ jobId: args.jobId, vm: vm.id });
  const base = { host, jobId: args.jobId, vm: vm.id };
  const emit = (e: EventInput) =>
    publishEvent(js, e).catch((err: unknown) => log.warn({ err, type: e.type }, 'could not publish event'));
  // Round events are fire-and-forget so a slow store never stalls the page stream.
  try {
    const stats = await runPrecopy(vm, client, {
      jobId: args.jobId,
      targetHost: args.targetHost,
      targetVmId: args.targetVmId,
      thresholdPages: args.thresholdPages,
      maxRounds: args.maxRounds,
      verify: args.verify,
      fault: args.fault as Fault,
      maxBandwidthBytesPerS: args.maxBandwidthBytesPerS,
      deadlineMs: deps.deadlineMs,
      signal: deps.signal,
      log,
      onRound: (r) => void emit({ ...base, type: 'clone.round', ...r }),
      onSwitchover: (s) => void emit({ ...base, type: 'clone.switchover', ...s }),
    });
    if (args.verify) {
      const reply = await new Promise<{ memoryHash: string; hashMs: number }>((resolve, reject) => {
        client.verifyClone({ jobId: args.jobId, targetVmId: args.targetVmId }, { deadline: Date.now() + 120_000 }, (err, r) =>
          err || !r ? reject(fromServiceError(err, `verify on ${args.targetHost}`)) : resolve(r),
        );
      });
      stats.cloneHash = reply.memoryHash;
      stats.verifyMs += reply.hashMs;
    }
    await emit({ ...base, type: 'clone.completed', stats });
    log.info({ downtimeMs: stats.downtimeMs, rounds: stats.rounds }, 'clone completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'clone failed; source VM keeps running');
    await emit({ ...base, type: 'clone.failed', error: e.toJSON() });
  }
}
