/** The agent's gRPC data-plane server: receives pre-copy streams into prepared clones. */
import {
  Server,
  type ServerDuplexStream,
  type ServerReadableStream,
  type sendUnaryData,
  type ServerUnaryCall,
} from '@grpc/grpc-js';
import {
  DATA_PLANE_MAX_MESSAGE_BYTES,
  AbortedError,
  loadDataPlaneProto,
  raiseServerWindows,
  serverCredentials,
  toDoppelError,
  type Transport,
  toServiceError,
  type Logger,
} from '../../../shared/src/mod.js';
import type { DataPlaneHandlers } from '../../../shared/src/gen/doppel/v1/DataPlane.js';
import type { PageFrame__Output } from '../../../shared/src/gen/doppel/v1/PageFrame.js';
import type { StreamAck } from '../../../shared/src/gen/doppel/v1/StreamAck.js';
import type { VerifyCloneRequest__Output } from '../../../shared/src/gen/doppel/v1/VerifyCloneRequest.js';
import type { VerifyCloneReply } from '../../../shared/src/gen/doppel/v1/VerifyCloneReply.js';
import type { DiskFrame__Output } from '../../../shared/src/gen/doppel/v1/DiskFrame.js';
import type { DiskCopySummary } from '../../../shared/src/gen/doppel/v1/DiskCopySummary.js';
import { PageStreamReceiver } from '../precopy/receiver.js';
import { DiskStreamReceiver } from '../diskcopy/receiver.js';
import { MigrationStreamReceiver } from '../migration/receiver.js';
import type { MigrationFrame__Output } from '../../../shared/src/gen/doppel/v1/MigrationFrame.js';
import type { MigrationAck } from '../../../shared/src/gen/doppel/v1/MigrationAck.js';
import type { CloneTargets } from '../clone-targets.js';
import { bindStream, type StreamGuard } from './guard.js';

export interface DataPlaneDeps {
  targets: CloneTargets;
  log: Logger;
  guard: StreamGuard;
  transport: Transport;
}

export function dataPlaneHandlers({ targets, log, guard }: DataPlaneDeps): DataPlaneHandlers {
  /** Authorizes a call before its first frame; a refused call gets its status and nothing is read or written. */
  const admit = (call: Parameters<StreamGuard['admit']>[0], dirs: Parameters<StreamGuard['admit']>[1]) => {
    try {
      return guard.admit(call, dirs);
    } catch (err) {
      log.warn({ err: toDoppelError(err), peer: call.getPeer() }, 'data-plane call refused');
      return toServiceError(err);
    }
  };
  return {
    StreamPages(call: ServerDuplexStream<PageFrame__Output, StreamAck>) {
      const claims = admit(call, ['pages', 'probe']);
      if (claims instanceof Error) return void call.emit('error', claims);
      const receiver = new PageStreamReceiver((open) => {
        bindStream(claims, open);
        return targets.claim(open);
      }, log);
      let done = false;
      const fail = (err: unknown) => {
        if (done) return;
        done = true;
        const e = toDoppelError(err);
        const vm = receiver.targetVm;
        log.warn({ err: e, jobId: receiver.jobId }, 'page stream failed');
        if (vm) targets.discard(vm.id, `stream failed: ${e.message}`);
        call.emit('error', toServiceError(e));
      };
      call.on('data', (frame: PageFrame__Output) => {
        if (done) return;
        try {
          receiver.onFrame(frame);
          // Every page of the round is applied by now (frames are handled in order, synchronously).
          if (frame.kind === 'roundEnd') call.write({ round: frame.roundEnd!.round, pagesApplied: receiver.pagesApplied });
        } catch (err) {
          fail(err);
        }
      });
      call.on('end', () => {
        if (done) return;
        try {
          const summary = receiver.finish();
          const vm = receiver.targetVm;
          if (vm && !targets.complete(vm.id)) throw new AbortedError(`clone ${vm.id} was removed while it was receiving`);
          done = true;
          // write() then end(): grpc-js drops a message passed to a server stream's end().
          call.write({ summary, round: summary.rounds, pagesApplied: summary.pagesApplied });
          call.end();
        } catch (err) {
          fail(err);
        }
      });
      call.on('error', (err) => fail(err));
      call.on('cancelled', () => fail(new AbortedError('the source cancelled the stream')));
    },

    StreamDisk(call: ServerReadableStream<DiskFrame__Output, DiskCopySummary>, callback: sendUnaryData<DiskCopySummary>) {
      const claims = admit(call, ['disk']);
      if (claims instanceof Error) return void callback(claims);
      const receiver = new DiskStreamReceiver(
        (open) => {
          bindStream(claims, open);
          return targets.claimDisks(open);
        },
        (vm, chains) => vm.linkDisks(chains),
        log,
      );
      let done = false;
      const fail = (err: unknown) => {
        if (done) return;
        done = true;
        const e = toDoppelError(err);
        const vm = receiver.targetVm;
        log.warn({ err: e, jobId: receiver.jobId }, 'disk stream failed');
        if (vm) targets.discard(vm.id, `disk stream failed: ${e.message}`);
        callback(toServiceError(e));
      };
      // Frames are applied in order, one at a time: the stream pauses while a frame's blocks are written,
      // so a fast sender meets HTTP/2 flow control instead of an unbounded queue here.
      let chain = Promise.resolve();
      call.on('data', (frame: DiskFrame__Output) => {
        if (done) return;
        call.pause();
        chain = chain
          .then(() => (done ? undefined : receiver.onFrame(frame)))
          .then(() => {
            call.resume();
          })
          .catch(fail);
      });
      call.on('end', () => {
        chain = chain
          .then(() => {
            if (done) return;
            const summary = receiver.finish();
            const vm = receiver.targetVm;
            if (vm && !targets.completeDisks(vm.id)) throw new AbortedError(`clone ${vm.id} was removed while it was receiving its disks`);
            done = true;
            callback(null, summary);
          })
          .catch(fail);
      });
      call.on('error', (err) => fail(err));
      call.on('cancelled', () => fail(new AbortedError('the source cancelled the disk stream')));
    },

    StreamMigration(call: ServerDuplexStream<MigrationFrame__Output, MigrationAck>) {
      const claims = admit(call, ['pages']);
      if (claims instanceof Error) return void call.emit('error', claims);
      const receiver = new MigrationStreamReceiver((open) => {
        bindStream(claims, open);
        return targets.claim(open);
      }, log.child({ component: 'migration-receiver' }));
      let done = false;
      const fail = (err: unknown) => {
        if (done) return;
        done = true;
        const e = toDoppelError(err);
        receiver.abort(e);
        const vm = receiver.targetVm;
        log.warn({ err: e, jobId: receiver.jobId }, 'migration stream failed');
        if (vm) targets.discard(vm.id, `migration stream failed: ${e.message}`);
        call.emit('error', toServiceError(e));
      };
      // Frames go to the clone's QEMU in order, one at a time: the call pauses while QEMU's socket drains, so the
      // source meets HTTP/2 flow control (and its relay, QEMU's own socket) instead of a queue here.
      let chain = Promise.resolve();
      let watching = false;
      call.on('data', (frame: MigrationFrame__Output) => {
        if (done) return;
        call.pause();
        chain = chain
          .then(async () => {
            if (done) return;
            await receiver.onFrame(frame);
            const signal = receiver.signal;
            if (signal && !watching) {
              // The clone's QEMU went away mid-stream: fail now, the source's next frame may be far off.
              watching = true;
              signal.addEventListener('abort', () => fail(signal.reason), { once: true });
            }
            if (receiver.frames > 0 && receiver.frames % 64 === 0) call.write({ frames: receiver.frames });
            call.resume();
          })
          .catch(fail);
      });
      call.on('end', () => {
        chain = chain
          .then(async () => {
            if (done) return;
            const summary = await receiver.finish();
            const vm = receiver.targetVm;
            if (vm && !targets.complete(vm.id)) throw new AbortedError(`clone ${vm.id} was removed while it was receiving`);
            done = true;
            call.write({ frames: receiver.frames, summary });
            call.end();
          })
          .catch(fail);
      });
      call.on('error', (err) => fail(err));
      call.on('cancelled', () => fail(new AbortedError('the source cancelled the migration stream')));
    },

    VerifyClone(call: ServerUnaryCall<VerifyCloneRequest__Output, VerifyCloneReply>, callback: sendUnaryData<VerifyCloneReply>) {
      const claims = admit(call, ['verify']);
      if (claims instanceof Error) return void callback(claims);
      void (async () => {
        try {
          bindStream(claims, call.request);
          const vm = targets.received(call.request.jobId, call.request.targetVmId);
          const t0 = performance.now();
          const memoryHash = await vm.memoryHash();
          callback(null, { memoryHash, hashMs: performance.now() - t0 });
        } catch (err) {
          callback(toServiceError(err));
        }
      })();
    },
  };
}

/** Starts the data-plane server; resolves with the bound address (port 0 picks one). */
export async function startDataPlaneServer(listen: string, deps: DataPlaneDeps): Promise<{ server: Server; addr: string }> {
  const proto = loadDataPlaneProto();
  const server = new Server({
    'grpc.max_receive_message_length': DATA_PLANE_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': 1024 * 1024,
  });
  server.addService(proto.doppel.v1.DataPlane.service, dataPlaneHandlers(deps));
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(listen, serverCredentials(deps.transport), (err, p) => (err ? reject(err) : resolve(p)));
  });
  if (!raiseServerWindows(server)) deps.log.warn('could not raise HTTP/2 windows (grpc-js internals changed); the page stream will be slower');
  const host = listen.slice(0, listen.lastIndexOf(':'));
  return { server, addr: `${host}:${port}` };
}
