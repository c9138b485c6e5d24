/**
 * Block bitmaps of the storage array's API: bit b (block b, at byte offset b × blockSize of the volume)
 * is bit (b & 7) of byte (b >> 3), least significant bit first. A bitmap of `blocks` blocks is
 * ceil(blocks / 8) bytes; the bits past the last block are zero.
 */

export function bitmapByteLength(blocks: number): number {
  return Math.ceil(blocks / 8);
}

export function hasBlock(bitmap: Uint8Array, block: number): boolean {
  return ((bitmap[block >> 3] ?? 0) & (1 << (block & 7))) !== 0;
}

/** Sets bit `block`; returns false when it was set already. */
export function setBlock(bitmap: Uint8Array, block: number): boolean {
  const i = block >> 3;
  const bit = 1 << (block & 7);
  const byte = bitmap[i] ?? 0;
  if ((byte & bit) !== 0) return false;
  bitmap[i] = byte | bit;
  return true;
}

/** target |= source, byte by byte (source may be shorter). */
export function orInto(target: Uint8Array, source: Uint8Array): void {
  const n = Math.min(target.length, source.length);
  for (let i = 0; i < n; i++) target[i] = (target[i] ?? 0) | (source[i] ?? 0);
}

const POPCOUNT = Uint8Array.from({ length: 256 }, (_, v) => {
  let c = 0;
  for (let x = v; x !== 0; x >>= 1) c += x & 1;
  return c;
});

/** How many bits are set. */
export function countBlocks(bitmap: Uint8Array): number {
  let n = 0;
  for (const byte of bitmap) n += POPCOUNT[byte] ?? 0;
  return n;
}

/** The set blocks in ascending order. */
export function* setBlocks(bitmap: Uint8Array): Generator<number> {
  for (let i = 0; i < bitmap.length; i++) {
    const byte = bitmap[i] ?? 0;
    if (byte === 0) continue;
    for (let bit = 0; bit < 8; bit++) if ((byte & (1 << bit)) !== 0) yield i * 8 + bit;
  }
}

/** Consecutive set blocks as [first, count] runs, ascending: what a reader turns into reads. */
export function blockRuns(bitmap: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  let last: [number, number] | undefined;
  for (const b of setBlocks(bitmap)) {
    if (last && last[0] + last[1] === b) last[1]++;
    else runs.push((last = [b, 1]));
  }
  return runs;
}
