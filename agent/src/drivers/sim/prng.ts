/** xoshiro128** : small, fast, seedable, and its whole state fits in four machine-state words. */
export function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function seedState(seed: number): [number, number, number, number] {
  const sm = splitmix32(seed);
  return [sm(), sm(), sm(), sm() | 1];
}

/** Advances the state in place and returns a 32-bit value. */
export function xoshiro128ss(s: Uint32Array, o: number): number {
  const s0 = s[o]!, s1 = s[o + 1]!, s2 = s[o + 2]!, s3 = s[o + 3]!;
  const result = Math.imul(rotl(Math.imul(s1, 5) >>> 0, 7), 9) >>> 0;
  const t = (s1 << 9) >>> 0;
  const n2 = (s2 ^ s0) >>> 0;
  const n3 = (s3 ^ s1) >>> 0;
  s[o + 1] = (s1 ^ n2) >>> 0;
  s[o] = (s0 ^ n3) >>> 0;
  s[o + 2] = (n2 ^ t) >>> 0;
  s[o + 3] = rotl(n3, 11);
  return result;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
