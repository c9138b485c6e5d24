/** Waiting on grpc-js backpressure: one helper for every client stream that writes with flow control. */

/**
 * Resolves on the stream's next `drain`; rejects as soon as the call has failed. `waiters` are the stream
 * owner's wake-up callbacks, run whenever its failure state may have changed.
 */
export function drainOrFailure(
  stream: NodeJS.EventEmitter,
  waiters: Set<() => void>,
  failure: () => Error | undefined,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const cleanup = () => {
      stream.off('drain', onDrain);
      waiters.delete(onFailure);
    };
    const onDrain = () => {
      cleanup();
      resolve();
    };
    const onFailure = () => {
      const err = failure();
      if (!err) return;
      cleanup();
      reject(err);
    };
    stream.on('drain', onDrain);
    waiters.add(onFailure);
    onFailure();
  });
}
