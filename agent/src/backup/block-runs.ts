/**
 * Change bitmaps (one bit per block) as compact runs, for a NATS reply, and
 * their union. A bitmap too scattered to send is given up on: the receiver then
 * drops its tracking, which costs a full backup, never a wrong one.
 */
import type { BlockChanges } from '../drivers/driver.js';

/** At most this many runs per disk travel (2 numbers each, well inside a NATS message). */
const MAX_RUNS = 20_000;

/** Set bits as flat [first, count, first, count, ...]; null when there are more than MAX_RUNS runs. */
export function bitmapToRuns(bitmap: Uint32Array): number[] | null {
  const runs: number[] = [];
  const n = bitmap.length * 32;
  let b = 0;
  while (b < n) {
    if (((bitmap[b >>> 5]! >>> (b & 31)) & 1) === 0) {
      b++;
      continue;
    }
    const first = b;
    while (b < n && ((bitmap[b >>> 5]! >>> (b & 31)) & 1) === 1) b++;
    runs.push(first, b - first);
    if (runs.length > 2 * MAX_RUNS) return null;
  }
  return runs;
}

export function runsToBitmap(runs: readonly number[], words: number): Uint32Array | null {
  const bitmap = new Uint32Array(words);
  for (let i = 0; i + 1 < runs.length; i += 2) {
    const first = runs[i]!;
    const count = runs[i + 1]!;
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > words * 32) return null;
    for (let b = first; b < first + count; b++) bitmap[b >>> 5]! |= 1 << (b & 31);
  }
  return bitmap;
}

/** Changes relative to `a.since` that also include `b`'s bits; null if either is unknown. */
export function unionChanges(a: BlockChanges | null, b: BlockChanges | null): BlockChanges | null {
  if (!a || !b || a.bitmap.length !== b.bitmap.length) return null;
  return { since: a.since, bitmap: a.bitmap.map((w, i) => (w | b.bitmap[i]!) >>> 0) };
}
