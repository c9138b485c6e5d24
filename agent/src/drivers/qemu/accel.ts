/**
 * Chooses QEMU's accelerator: KVM when it really runs a guest, else TCG.
 *
 * `/dev/kvm` being there and `query-kvm` saying enabled is not enough: on the hosts doppel was built on, KVM is
 * backed by PVM (the `kvm_pvm` module, no VT-x/AMD-V in the CPU flags). It runs real-mode code but hangs a guest
 * the moment it enters protected mode, which is where a Linux kernel hung after "Probing EDD". So the probe boots
 * a 64 KiB firmware of our own that walks real mode → protected mode → long mode and then writes to QEMU's
 * isa-debug-exit port; only a QEMU that exits with the expected status proves KVM works.
 */
import { constants, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { QemuProcess, defaultQemuBinary } from './qemu-process.js';

export type QemuAccel = 'kvm' | 'tcg';

/** The accelerator chosen and why, for logs and `doppel` status output. */
export interface AccelDecision {
  accel: QemuAccel;
  /** One sentence for people. */
  reason: string;
  /** 'env': DOPPEL_QEMU_ACCEL chose it; 'probe': detection did. */
  source: 'env' | 'probe';
  /** What `query-kvm` said in the probe, when it got that far. */
  queryKvm?: { enabled: boolean; present: boolean };
}

export interface DetectAccelOptions {
  binary?: string;
  /** Bound on the probe guest reaching long mode under KVM (default 3 s; it takes about 50 ms when KVM works). */
  timeoutMs?: number;
  /** Probe again instead of using this process's cached answer. */
  refresh?: boolean;
  /** Default process.env; DOPPEL_QEMU_ACCEL=kvm|tcg skips the probe. */
  env?: NodeJS.ProcessEnv;
  /** Default /dev/kvm (tests point it elsewhere). */
  kvmDevice?: string;
  logger?: Logger;
}

/** The env override; any other value is an InvalidArgumentError. */
export const ACCEL_ENV = 'DOPPEL_QEMU_ACCEL';

let cached: Promise<AccelDecision> | null = null;

/**
 * 'kvm' when /dev/kvm opens read-write, QEMU's `query-kvm` says present and enabled, and a probe guest runs
 * through to long mode under it; 'tcg' otherwise, with the reason. DOPPEL_QEMU_ACCEL overrides it (read on every
 * call); the probe's result is cached for the process.
 */
export async function detectAccel(opts: DetectAccelOptions = {}): Promise<AccelDecision> {
  const env = opts.env ?? process.env;
  const forced = env[ACCEL_ENV];
  if (forced !== undefined && forced !== '') {
    if (forced !== 'kvm' && forced !== 'tcg') throw new InvalidArgumentError(`${ACCEL_ENV}=${forced}: must be kvm or tcg`);
    return { accel: forced, reason: `${ACCEL_ENV}=${forced} chose it`, source: 'env' };
  }
  if (cached && !opts.refresh) return cached;
  const p = probe(opts);
  cached = p;
  // A failure is not cached: the next call probes again.
  p.catch(() => {
    if (cached === p) cached = null;
  });
  return p;
}

/** Forgets the cached probe result (tests). */
export function resetAccelCache(): void {
  cached = null;
}

/** The isa-debug-exit status QEMU exits with once the probe reaches long mode: (0x2a << 1) | 1. */
const PROBE_EXIT_CODE = 85;

async function probe(opts: DetectAccelOptions): Promise<AccelDecision> {
  const log = (opts.logger ?? silentLogger()).child({ component: 'accel' });
  const device = opts.kvmDevice ?? '/dev/kvm';
  const tcg = (reason: string, queryKvm?: AccelDecision['queryKvm']): AccelDecision => {
    log.info({ reason }, 'QEMU accelerator: tcg');
    return { accel: 'tcg', reason, source: 'probe', ...(queryKvm ? { queryKvm } : {}) };
  };
  if (!existsSync(device)) return tcg(`${device} does not exist`);
  try {
    const fh = await open(device, constants.O_RDWR);
    await fh.close();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    return tcg(`${device} does not open read-write (${code}); the user needs to be in the kvm group`);
  }
  const pvm = existsSync('/sys/module/kvm_pvm') ? ' (KVM here is PVM: the kvm_pvm module is loaded)' : '';

  const dir = mkdtempSync(join(tmpdir(), 'doppel-accel-'));
  try {
    const firmware = join(dir, 'probe.bin');
    const stages = join(dir, 'stages');
    writeFileSync(firmware, probeFirmware());
    let qemu: QemuProcess;
    try {
      qemu = await QemuProcess.start({
        binary: opts.binary ?? defaultQemuBinary(),
        args: [
          '-accel', 'kvm', '-machine', 'q35', '-m', '16', '-nodefaults', '-no-user-config', '-display', 'none', '-S',
          '-bios', firmware,
          '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x04',
          '-debugcon', `file:${stages}`,
        ],
        startTimeoutMs: 10_000,
        logger: log,
      });
    } catch (err) {
      return tcg(`QEMU does not start with -accel kvm: ${err instanceof Error ? err.message : String(err)}`);
    }
    try {
      const queryKvm = await qemu.qmp.queryKvm({ timeoutMs: 5_000 });
      if (!queryKvm.present || !queryKvm.enabled) {
        return tcg(`query-kvm says present=${queryKvm.present} enabled=${queryKvm.enabled}`, queryKvm);
      }
      await qemu.qmp.execute('cont', undefined, { timeoutMs: 5_000 });
      const timeoutMs = opts.timeoutMs ?? 3_000;
      let timer: NodeJS.Timeout | undefined;
      const exit = await Promise.race([qemu.exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)))]);
      clearTimeout(timer);
      const reached = readStages(stages);
      if (exit?.code === PROBE_EXIT_CODE) {
        log.info({ queryKvm }, 'QEMU accelerator: kvm');
        return { accel: 'kvm', reason: `KVM is present and enabled, and a probe guest ran through real, protected and long mode${pvm}`, source: 'probe', queryKvm };
      }
      if (!exit) {
        return tcg(`KVM is present and enabled, but a probe guest hung under it after ${reached} within ${timeoutMs} ms${pvm}: standard guests would hang too`, queryKvm);
      }
      return tcg(`KVM is present and enabled, but the probe guest's QEMU exited with ${exit.signal ?? `code ${exit.code}`} after ${reached}: ${exit.stderr.trim()}`, queryKvm);
    } finally {
      qemu.kill('SIGKILL');
      await qemu.exited;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function readStages(path: string): string {
  let s = '';
  try {
    s = readFileSync(path, 'latin1');
  } catch {
    // No debugcon output: it never ran an instruction.
  }
  const names: Record<string, string> = { R: 'real mode', P: 'protected mode', L: 'long mode' };
  const seen = [...s].map((c) => names[c]).filter((n): n is string => n !== undefined);
  return seen.length ? `reaching ${seen.join(', ')}` : 'reaching no stage';
}

/**
 * A 64 KiB firmware image (for `-bios`; the CPU starts at its last 16 bytes, 0xFFFFFFF0). Assembled from this
 * source with GNU as (`as --32`, `ld -Ttext 0 --oformat binary`), code at offset 0xF000:
 *
 *   .code16: cli; out 'R' to 0xe9; lgdtl %cs:gdtr; set CR0.PE; ljmpl $0x08, pm32
 *   .code32: load data segments; out 'P' to 0xe9; identity-map 0-2 MiB and 0xFFE00000-4 GiB with 2 MiB pages
 *            (PML4 0x1000, PDPT 0x2000, PDs 0x3000 and 0x4000); CR4.PAE; CR3; EFER.LME; CR0.PG; ljmpl $0x18, lm64
 *   .code64: out 'L' to 0xe9; out 0x2a to 0xf4 (isa-debug-exit: QEMU exits with 85); hlt loop
 *   gdt: null, code32, data32, code64; gdtr at 0xF0C0
 *   at 0xFFF0 (the reset vector): jmp 0xF000
 *
 * Port 0xe9 is QEMU's debugcon: the letters say how far the guest got.
 */
export function probeFirmware(): Buffer {
  const image = Buffer.alloc(64 * 1024);
  Buffer.from(PROBE_CODE_HEX, 'hex').copy(image, 0xf000);
  Buffer.from('e90df0', 'hex').copy(image, 0xfff0);
  return image;
}

const PROBE_CODE_HEX =
  'fab052e6e92e660f0116c0f00f20c06683c8010f22c066ea1ef0ffff080066b810008ed88ec08ed0b050e6e9c7050010000003200000' +
  'c7050020000003300000c7051820000003400000c7050030000083000000c705f84f00008300e0ff0f20e083c8200f22e0b800100000' +
  '0f22d8b9800000c00f320d000100000f300f20c00d000000800f22c0ea8ff0ffff1800b04ce6e9b02ae6f4f4ebfd8db4000066900000' +
  '000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf001f00a0f0ffff';
