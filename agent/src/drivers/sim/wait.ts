/** Waiting on a shared word from the driver's thread without blocking it. */

/**
 * Resolves when `arr[index]` is no longer `value`, or after `ms`. A ref'd timer runs alongside, because
 * Atomics.waitAsync alone does not keep Node's event loop alive: with a dead worker the caller would hang
 * instead of seeing its deadline pass.
 */
export async function waitWhile(arr: Int32Array, index: number, value: number, ms: number): Promise<void> {
  const r = Atomics.waitAsync(arr, index, value, ms);
  if (!r.async) return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([r.value, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms + 5)))]);
  } finally {
    clearTimeout(timer);
  }
}
