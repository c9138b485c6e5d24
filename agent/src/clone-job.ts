/**
 * Runs one live clone on the source host and reports it as events. The events
 * go into the JetStream stream, from which the coordinator keeps the job record,
 * so a coordinator restart in the middle of a clone loses nothing.
 */
import type { JetStreamClient } from '@nats-io/jetstream';
import { DataCorruptionError, fromServiceError, publishEvent, toDoppelError, type CloneStartArgs, type EventInput, type Logger } from '../../shared/src/mod.js';
import type { DriverVm } from './drivers/driver.js';
import type { DataPlaneClient } from './dataplane/client.js';
import { runPrecopy, type Fault } from './precopy/sender.js';

export interface CloneJobDeps {
  js: JetStreamClient;
  host: string;
  log: Logger;
  client: DataPlaneClient;
  deadlineMs: number;
  switchoverTimeoutMs: number;
  signal: AbortSignal;
  /** Called once the source VM is back in its state, before the result event: the registry should see it first. */
  onSettled: () => void;
}

export async function runCloneJob(vm: DriverVm, args: CloneStartArgs, deps: CloneJobDeps): Promise<void> {
  const { js, host, client } = deps;
  const log = deps.log.child({ jobId: args.jobId, vm: vm.id });
  const base = { host, jobId: args.jobId, vm: vm.id };
  const emit = (e: EventInput) =>
    publishEvent(js, e).catch((err: unknown) => log.warn({ err, type: e.type }, 'could not publish event'));
  // Round events are fire-and-forget so a slow store never stalls the page stream; the result is retried,
  // because the coordinator's job record depends on it.
  const emitResult = async (e: EventInput) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await publishEvent(js, e);
      } catch (err) {
        if (attempt >= 8) return log.error({ err, type: e.type }, 'result event lost after 8 attempts');
        await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
      }
    }
  };
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
      switchoverTimeoutMs: deps.switchoverTimeoutMs,
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
      if (stats.cloneHash !== stats.sourceHash) {
        throw new DataCorruptionError(
          `clone memory hash ${stats.cloneHash.slice(0, 16)}… differs from the source's at suspension ${stats.sourceHash.slice(0, 16)}…`,
        );
      }
    }
    deps.onSettled();
    await emitResult({ ...base, type: 'clone.completed', stats });
    log.info({ downtimeMs: stats.downtimeMs, rounds: stats.rounds }, 'clone completed');
  } catch (err) {
    const e = toDoppelError(err);
    log.error({ err: e }, 'clone failed; source VM keeps running');
    deps.onSettled();
    await emitResult({ ...base, type: 'clone.failed', error: e.toJSON() });
  }
}
