/**
 * The Repository gRPC service over a `Repository`. Handlers validate every
 * request before touching the store, answer with typed errors (mapped to
 * status codes by toServiceError) and never throw out of a handler. The chunk
 * streams honour backpressure both ways: PutChunks pauses the call while a few
 * chunks are being verified and written, ReadChunks and VerifyBackup wait for
 * `drain`.
 */
import type { sendUnaryData, ServerReadableStream, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import {
  AbortedError,
  DIGEST_BYTES,
  DoppelError,
  InvalidArgumentError,
  MAX_MISSING_QUERY,
  MAX_READ_CHUNKS,
  requireInt,
  toDoppelError,
  toServiceError,
  type EncodedChunk,
  type Logger,
  type RepoManifest,
} from '../../shared/src/mod.js';
import type { RepositoryHandlers } from '../../shared/src/gen/doppel/v1/Repository.js';
import type { BackupManifest } from '../../shared/src/gen/doppel/v1/BackupManifest.js';
import type { Chunk, Chunk__Output } from '../../shared/src/gen/doppel/v1/Chunk.js';
import type { PutChunksReply } from '../../shared/src/gen/doppel/v1/PutChunksReply.js';
import type { BackupRef__Output } from '../../shared/src/gen/doppel/v1/BackupRef.js';
import type { CommitBackupRequest__Output } from '../../shared/src/gen/doppel/v1/CommitBackupRequest.js';
import type { IndexRef__Output } from '../../shared/src/gen/doppel/v1/IndexRef.js';
import type { ListBackupsRequest__Output } from '../../shared/src/gen/doppel/v1/ListBackupsRequest.js';
import type { MissingChunksRequest__Output } from '../../shared/src/gen/doppel/v1/MissingChunksRequest.js';
import type { ReadChunksRequest__Output } from '../../shared/src/gen/doppel/v1/ReadChunksRequest.js';
import type { VerifyProgress } from '../../shared/src/gen/doppel/v1/VerifyProgress.js';
import type { Repository } from './store.js';

/** What the service needs: the store and a logger (a child of the process's root logger). */
export interface RepositoryServiceDeps {
  repo: Repository;
  log: Logger;
}

/**
 * Chunks one PutChunks call verifies and writes at once. Each spends most of
 * its time waiting (for a hash worker, for the thread pool, for fsync): during
 * a full backup on two cores a chunk took 40-90 ms from arrival to rename, so
 * 3 at once held the stream to about 70 chunks (280 MB raw) a second. Memory:
 * at most this many messages (a compressed chunk, or 4 MiB raw) per call.
 */
const PUT_CONCURRENCY = 8;
/** Chunks ReadChunks reads and verifies ahead of the one being sent. */
const READ_AHEAD = 2;

/** Client mistakes are routine; everything else deserves a warning. */
function logFailure(log: Logger, method: string, err: unknown): void {
  const e = toDoppelError(err);
  const routine = ['INVALID_ARGUMENT', 'NOT_FOUND', 'ALREADY_EXISTS', 'FAILED_PRECONDITION', 'ABORTED'].includes(e.code);
  if (routine) log.info({ method, code: e.code, msg: e.message }, 'request refused');
  else log.warn({ err: e, method }, 'request failed');
}

function manifestToProto(m: RepoManifest): BackupManifest {
  return { backupId: m.backupId, createdAt: m.createdAt, metadataJson: m.metadataJson, disks: m.disks };
}

function requireDigests(digests: readonly Buffer[], max: number, method: string): void {
  if (digests.length > max) throw new InvalidArgumentError(`${method} takes at most ${max} digests (got ${digests.length})`);
  digests.forEach((d, i) => {
    if (d.length !== DIGEST_BYTES) throw new InvalidArgumentError(`${method}: digest ${i} is ${d.length} bytes (expected ${DIGEST_BYTES})`);
  });
}

function unary<Req, Res>(log: Logger, method: string, fn: (req: Req) => Promise<Res>) {
  return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>): void => {
    fn(call.request).then(
      (res) => callback(null, res),
      (err: unknown) => {
        logFailure(log, method, err);
        callback(toServiceError(err));
      },
    );
  };
}

/**
 * Writes one message of a server stream; resolves once grpc-js can take more,
 * or the call is gone. `onReleased` runs when grpc-js no longer needs `msg`.
 */
function send<T>(call: ServerWritableStream<unknown, T>, msg: T, onReleased?: () => void): Promise<void> {
  if (call.write(msg, () => onReleased?.())) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off('drain', done);
      call.off('cancelled', done);
      resolve();
    };
    call.on('drain', done);
    call.on('cancelled', done);
  });
}

/** Runs a server-streaming handler: a failure ends the call with its status. */
function streaming<Req, Res>(log: Logger, method: string, fn: (call: ServerWritableStream<Req, Res>, cancelled: () => boolean) => Promise<void>) {
  return (call: ServerWritableStream<Req, Res>): void => {
    let cancelled = false;
    call.on('cancelled', () => (cancelled = true));
    fn(call, () => cancelled).then(
      () => {
        if (!cancelled) call.end();
      },
      (err: unknown) => {
        logFailure(log, method, err);
        if (!cancelled) call.emit('error', toServiceError(err));
      },
    );
  };
}

function putChunks(repo: Repository, log: Logger) {
  return (call: ServerReadableStream<Chunk__Output, PutChunksReply>, callback: sendUnaryData<PutChunksReply>): void => {
    const inflight = new Set<Promise<void>>();
    const reply = { chunksStored: 0, chunksExisting: 0, bytesStored: 0 };
    let failure: DoppelError | undefined;
    let ended = false;
    let answered = false;
    // Directories that received chunks: fsynced once, before the answer, whatever it is
    // (a retry after a failure will find and reuse those chunks, so their names must be durable too).
    const dirs = new Set<string>();
    // Answer only once nothing is in flight, so a failed write has removed its temp file by then.
    const finish = () => {
      if (answered || inflight.size > 0 || (!failure && !ended)) return;
      answered = true;
      repo.syncDirs(dirs).then(
        () => {
          if (failure) {
            logFailure(log, 'PutChunks', failure);
            callback(toServiceError(failure));
          } else {
            log.debug(reply, 'chunks received');
            callback(null, reply);
          }
        },
        (err: unknown) => {
          const e = failure ?? toDoppelError(err);
          logFailure(log, 'PutChunks', e);
          callback(toServiceError(e));
        },
      );
    };
    const fail = (err: unknown) => {
      failure ??= toDoppelError(err);
      finish();
    };
    call.on('data', (c: Chunk__Output) => {
      if (failure) return;
      const chunk: EncodedChunk = { digest: c.digest, rawLength: c.rawLength, compressed: c.compressed, data: c.data };
      const p: Promise<void> = repo
        .putChunk(chunk, dirs)
        .then(
          (r) => {
            if (r.stored) {
              reply.chunksStored++;
              reply.bytesStored += r.bytes;
            } else reply.chunksExisting++;
          },
          (err: unknown) => {
            failure ??= toDoppelError(err);
          },
        )
        .finally(() => {
          inflight.delete(p);
          if (inflight.size < PUT_CONCURRENCY) call.resume();
          finish();
        });
      inflight.add(p);
      if (inflight.size >= PUT_CONCURRENCY) call.pause();
    });
    call.on('end', () => {
      ended = true;
      finish();
    });
    call.on('error', fail);
    call.on('cancelled', () => fail(new AbortedError('the client cancelled the chunk stream')));
  };
}

/** The service's handlers; `addRepositoryService` in server.ts mounts them. */
export function repositoryHandlers({ repo, log }: RepositoryServiceDeps): RepositoryHandlers {
  return {
    GetInfo: unary(log, 'GetInfo', () => Promise.resolve(repo.info())),

    MissingChunks: unary(log, 'MissingChunks', async (req: MissingChunksRequest__Output) => {
      requireDigests(req.digests, MAX_MISSING_QUERY, 'MissingChunks');
      return { missing: await repo.missingChunks(req.digests) };
    }),

    PutChunks: putChunks(repo, log),

    CommitBackup: unary(log, 'CommitBackup', async (req: CommitBackupRequest__Output) =>
      manifestToProto(await repo.commit({ backupId: req.backupId, disks: req.disks, metadataJson: req.metadataJson })),
    ),

    GetManifest: unary(log, 'GetManifest', async (req: BackupRef__Output) => manifestToProto(await repo.manifest(req.backupId))),

    GetIndex: unary(log, 'GetIndex', async (req: IndexRef__Output) => repo.index(req.backupId, req.disk)),

    ListBackups: unary(log, 'ListBackups', async (req: ListBackupsRequest__Output) => {
      const limit = requireInt('limit', req.limit, 0, 1_000_000);
      return { backups: (await repo.list({ withMetadata: req.withMetadata, limit })).map(manifestToProto) };
    }),

    ReadChunks: streaming(log, 'ReadChunks', async (call: ServerWritableStream<ReadChunksRequest__Output, Chunk>, cancelled) => {
      const { digests } = call.request;
      requireDigests(digests, MAX_READ_CHUNKS, 'ReadChunks');
      // Reading and verifying the next chunks overlaps sending this one; each is verified before it leaves.
      const ahead: Promise<{ chunk: EncodedChunk; release: () => void }>[] = [];
      let next = 0;
      // grpc-js skips the write callback of a call that was cancelled: give the buffers back when it ends, too.
      const held = new Set<() => void>();
      const releaseAll = () => {
        for (const r of held) r();
        held.clear();
      };
      for (const event of ['close', 'finish', 'cancelled', 'error']) call.once(event, releaseAll);
      try {
        for (let k = 0; k < digests.length && !cancelled(); k++) {
          while (ahead.length <= READ_AHEAD && next < digests.length) {
            const p = repo.readChunkPooled(digests[next++]!);
            p.catch(() => undefined);
            ahead.push(p);
          }
          const { chunk: c, release } = await ahead.shift()!;
          if (cancelled()) {
            release();
            break;
          }
          held.add(release);
          // The pooled file buffer comes back once grpc-js has sent the message (or the call ended).
          await send(call, { digest: c.digest, rawLength: c.rawLength, compressed: c.compressed, data: c.data }, () => {
            held.delete(release);
            release();
          });
        }
      } finally {
        for (const p of ahead) void p.then((r) => r.release(), () => undefined);
      }
    }),

    VerifyBackup: streaming(log, 'VerifyBackup', async (call: ServerWritableStream<BackupRef__Output, VerifyProgress>, cancelled) => {
      const t0 = performance.now();
      let last = { chunksChecked: 0, bad: 0 };
      for await (const p of repo.verify(call.request.backupId)) {
        if (cancelled()) return;
        last = { chunksChecked: p.chunksChecked, bad: last.bad + p.bad.length };
        await send(call, p);
      }
      log.info({ backupId: call.request.backupId, ...last, ms: Math.round(performance.now() - t0) }, 'backup verified');
    }),
  };
}
