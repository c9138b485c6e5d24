import { setTimeout as sleep } from 'node:timers/promises';

/** Keeps a byte rate under a cap (bytes per second; 0 = none) by sleeping when ahead of schedule. */
export class Pacer {
  private readonly start = performance.now();
  constructor(private readonly bytesPerS: number) {}

  async pace(bytesSoFar: number): Promise<void> {
    if (this.bytesPerS <= 0) return;
    const ahead = (bytesSoFar / this.bytesPerS) * 1000 - (performance.now() - this.start);
    if (ahead > 1) await sleep(ahead);
  }
}
