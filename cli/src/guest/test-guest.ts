/**
 * The real test guest of the QEMU tests, the `qemu-clone-backup` demo and the bench: a Debian cloud kernel and an initramfs whose workload (test/guest/memtest.c)
 * dirties memory at a set rate and checks its own memory on command over the serial console.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export interface TestGuest {
  /** The kernel image, for QEMU's -kernel. */
  kernel: string;
  /** The initramfs, for QEMU's -initrd. */
  initrd: string;
  /** The build directory (also holds manifest.txt: kernel package and version, modules). */
  dir: string;
}

/** scripts/build-test-guest.sh, found from both the source tree and dist/. */
function buildScriptPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'scripts', 'build-test-guest.sh');
    if (existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new Error('scripts/build-test-guest.sh not found next to the doppel sources');
}
let built: Promise<TestGuest> | undefined;

/** Builds the test guest (or finds it in the cache); runs the build script at most once per process. */
export function ensureTestGuest(): Promise<TestGuest> {
  built ??= buildTestGuest().catch((e: unknown) => {
    built = undefined;
    throw e;
  });
  return built;
}

function buildTestGuest(): Promise<TestGuest> {
  return new Promise((resolve, reject) => {
    execFile(
      'bash',
      [buildScriptPath()],
      { maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60_000 },
      (err, stdout, stderr) => {
        if (err) {
          reject(new Error(`scripts/build-test-guest.sh failed: ${err.message}\n${stderr}`));
          return;
        }
        const dir = stdout.trim().split('\n').at(-1)?.trim() ?? '';
        const guest = { kernel: path.join(dir, 'vmlinuz'), initrd: path.join(dir, 'initrd.img'), dir };
        if (!dir || !existsSync(guest.kernel) || !existsSync(guest.initrd)) {
          reject(new Error(`scripts/build-test-guest.sh printed no usable directory (${JSON.stringify(dir)})\n${stderr}`));
          return;
        }
        resolve(guest);
      },
    );
  });
}

interface Waiter {
  re: RegExp;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface SerialConsoleOptions {
  /** How long to keep retrying the connection while QEMU starts (ms). */
  connectTimeoutMs?: number;
  /** Called with every complete line (for example to echo the console while debugging). */
  onLine?: (line: string) => void;
}

/**
 * A QEMU serial port exposed as a unix socket server (`-chardev socket,id=s0,path=PATH,server=on,wait=off
 * -serial chardev:s0`). Collects the lines the guest prints. waitFor() looks at the lines after the last match (or
 * after the last command sent), so one `MEMCHECK ok` never answers two checks.
 *
 * Connect right after starting QEMU: with wait=off, QEMU drops what the guest prints while nobody is connected.
 */
export class SerialConsole {
  /** Every complete line received so far, without line terminators. */
  readonly lines: string[] = [];
  private partial = '';
  private cursor = 0;
  private readonly waiters = new Set<Waiter>();
  private closed: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    private readonly onLine: ((line: string) => void) | undefined,
  ) {
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (e: Error) => this.fail(e));
    socket.on('close', () => this.fail(new Error('serial console closed')));
  }

  static async connect(socketPath: string, opts: SerialConsoleOptions = {}): Promise<SerialConsole> {
    const end = Date.now() + (opts.connectTimeoutMs ?? 10_000);
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(socketPath);
          s.once('connect', () => {
            s.removeListener('error', reject);
            resolve(s);
          });
          s.once('error', reject);
        });
        return new SerialConsole(socket, opts.onLine);
      } catch (e) {
        if (Date.now() > end) throw new Error(`cannot connect to the serial console at ${socketPath}: ${String(e)}`);
        await sleep(20);
      }
    }
  }

  /**
   * Resolves with the match of the first line, after the last match, that matches re. Rejects after timeoutMs, or
   * when the console closes, with the last lines seen.
   */
  waitFor(re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const m = this.scan(re);
    if (m) return Promise.resolve(m);
    if (this.closed) return Promise.reject(this.withTail(this.closed.message, re));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        re,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(this.withTail(`timed out after ${timeoutMs} ms`, re));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Sends one command line and waits for the answer matching re among the lines printed after it. */
  command(text: string, re: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    this.cursor = this.lines.length;
    this.socket.write(`${text}\n`);
    return this.waitFor(re, timeoutMs);
  }

  /** The last n lines, for assertion messages. */
  tail(n = 30): string {
    return this.lines.slice(-n).join('\n');
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const raw of parts) {
      const line = raw.replace(/\r/g, '');
      this.lines.push(line);
      this.onLine?.(line);
    }
    for (const w of [...this.waiters]) {
      const m = this.scan(w.re);
      if (m) {
        this.waiters.delete(w);
        clearTimeout(w.timer);
        w.resolve(m);
      }
    }
  }

  private scan(re: RegExp): RegExpExecArray | undefined {
    for (let i = this.cursor; i < this.lines.length; i++) {
      const m = re.exec(this.lines[i]!);
      if (m) {
        this.cursor = i + 1;
        return m;
      }
    }
    return undefined;
  }

  private fail(e: Error): void {
    this.closed ??= e;
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(this.withTail(e.message, w.re));
    }
    this.waiters.clear();
  }

  private withTail(what: string, re: RegExp): Error {
    return new Error(`serial console: ${what} waiting for ${String(re)}; last lines:\n${this.tail()}`);
  }
}
