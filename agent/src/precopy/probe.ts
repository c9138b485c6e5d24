/**
 * Measures the effective page bandwidth to a target: realistic non-zero pages
 * (compressible and random, as dirty pages are) through the real stream path,
 * LZ4 and checksums included. The target verifies and drops them.
 */
import { InvalidArgumentError, PAGE_SIZE, PageBatchEncoder, isZeroPage } from '../../../shared/src/mod.js';
import { fillGuestMemory } from '../drivers/sim/content.js';
import { PageStream, type DataPlaneClient } from '../dataplane/client.js';
import { Pacer } from './pacer.js';

const SAMPLE_PAGES = 4096;
let sample: Buffer[] | undefined;

function samplePages(): Buffer[] {
  if (sample) return sample;
  const sab = new SharedArrayBuffer(SAMPLE_PAGES * PAGE_SIZE);
  fillGuestMemory(sab, PAGE_SIZE, 424242);
  const all = Buffer.from(sab);
  sample = [];
  for (let i = 0; i < SAMPLE_PAGES; i++) {
    const p = Buffer.from(all.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
    if (!isZeroPage(p)) sample.push(p);
  }
  return sample;
}

/** A short stream first warms the JIT, the connection and its HTTP/2 windows, so the measured one is steady state. */
const WARMUP_BYTES = 8 * 1024 * 1024;

export async function probeLink(
  client: DataPlaneClient,
  target: string,
  bytes: number,
  maxBandwidthBytesPerS: number,
  /** Two probe tokens from the coordinator: the warm-up stream's and the measured one's. */
  tokens: readonly string[],
): Promise<number> {
  const [warmup, measured] = tokens;
  if (!warmup || !measured) throw new InvalidArgumentError('a link probe needs two stream tokens');
  await streamSample(client, target, Math.min(bytes, WARMUP_BYTES), maxBandwidthBytesPerS, warmup);
  return streamSample(client, target, bytes, maxBandwidthBytesPerS, measured);
}

async function streamSample(client: DataPlaneClient, target: string, bytes: number, maxBandwidthBytesPerS: number, token: string): Promise<number> {
  const pages = samplePages();
  const count = Math.max(64, Math.ceil(bytes / PAGE_SIZE));
  const stream = new PageStream(client, target, 30_000, token);
  const enc = new PageBatchEncoder();
  const t0 = performance.now();
  const pacer = new Pacer(maxBandwidthBytesPerS);
  await stream.write({ open: { jobId: 'probe', pageSize: PAGE_SIZE, pageCount: count, probe: true } });
  for (let i = 0; i < count; i++) {
    enc.add(i, pages[i % pages.length]!);
    if (enc.full || i === count - 1) {
      await stream.write({ batch: enc.finish(0) });
      await pacer.pace(enc.bytesRaw);
    }
  }
  await stream.end();
  return (count * PAGE_SIZE * 1000) / (performance.now() - t0);
}
