/**
 * Realistic initial guest memory: about 35% zero pages, 45% compressible pages
 * (text-like records) and 20% random pages, laid out by a seed so runs repeat.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { splitmix32 } from './prng.js';

export const CONTENT_MIX = { zero: 0.35, compressible: 0.45, random: 0.2 } as const;

const TEMPLATE_COUNT = 16;

/** Text-like records (compressible, as kernel and log data are), `size` bytes each; the same for the same seed. */
export function textTemplates(size: number, seed: number): Buffer[] {
  const words = ['kernel', 'inode', 'dentry', 'socket', 'buffer', 'slab', 'task', 'page', 'vma', 'mutex', 'irq', 'timer'];
  const rnd = splitmix32(seed ^ 0x5eed);
  const out: Buffer[] = [];
  for (let t = 0; t < TEMPLATE_COUNT; t++) {
    let text = '';
    while (text.length < size) {
      const a = words[rnd() % words.length]!;
      const b = words[rnd() % words.length]!;
      text += `${a}_${(rnd() % 4096).toString(16).padStart(4, '0')} ${b}=${rnd() % 100000} flags=0x${(rnd() % 256).toString(16)}\n`;
    }
    out.push(Buffer.from(text.slice(0, size), 'latin1'));
  }
  return out;
}

/** Fills `memory` in place. Random pages come from an AES-CTR keystream keyed by the seed (fast, repeatable). */
export function fillGuestMemory(memory: SharedArrayBuffer, pageSize: number, seed: number): void {
  const pageCount = memory.byteLength / pageSize;
  const view = Buffer.from(memory);
  const tpl = textTemplates(pageSize, seed);
  const key = createHash('sha256').update(`doppel-guest-${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const zeros = Buffer.alloc(pageSize);
  const rnd = splitmix32(seed);
  for (let p = 0; p < pageCount; p++) {
    const x = (rnd() % 1000) / 1000;
    const off = p * pageSize;
    if (x < CONTENT_MIX.zero) continue;
    if (x < CONTENT_MIX.zero + CONTENT_MIX.compressible) {
      tpl[rnd() % TEMPLATE_COUNT]!.copy(view, off);
      view.writeUInt32LE(p, off + ((p * 64) % pageSize));
    } else {
      cipher.update(zeros).copy(view, off);
    }
  }
}
