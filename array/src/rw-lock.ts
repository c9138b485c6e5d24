/**
 * A first-come-first-served readers-writer lock. Reads share it; writes, snapshots and deletions hold it
 * alone, so a snapshot sees every write before it whole and none after it. A waiting exclusive holder
 * stops new shared holders from jumping ahead of it (no writer starvation).
 */
interface Waiter {
  exclusive: boolean;
  wake: () => void;
}

export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Waiter[] = [];

  shared<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(false, fn);
  }

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return this.run(true, fn);
  }

  private async run<T>(exclusive: boolean, fn: () => Promise<T>): Promise<T> {
    await this.acquire(exclusive);
    try {
      return await fn();
    } finally {
      if (exclusive) this.writer = false;
      else this.readers--;
      this.pump();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && this.grantable(exclusive)) {
      this.grant(exclusive);
      return Promise.resolve();
    }
    return new Promise((resolve) => this.queue.push({ exclusive, wake: resolve }));
  }

  private grantable(exclusive: boolean): boolean {
    return exclusive ? !this.writer && this.readers === 0 : !this.writer;
  }

  private grant(exclusive: boolean): void {
    if (exclusive) this.writer = true;
    else this.readers++;
  }

  private pump(): void {
    for (let next = this.queue[0]; next && this.grantable(next.exclusive); next = this.queue[0]) {
      this.queue.shift();
      this.grant(next.exclusive);
      next.wake();
    }
  }
}
