/**
 * A qemu VM's record on disk (`vm.json` in `<dataDir>/vms/<id>/`): enough to find its QEMU again after an agent
 * restart (the QMP socket and pid), or to start a new QEMU on its disks when the old one is gone (the boot data,
 * the CPU model as QEMU got it, the pinned machine type, each disk's active image). `complete` is false for a VM
 * still being made (or an incoming clone, a restore, until it first runs): a load deletes such half-made VMs.
 * `adopted` marks a QEMU doppel did not start (`QemuDriver.adopt`): it is managed while it runs, never restarted.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { VmSpec } from '../../../../shared/src/mod.js';
import type { QemuAccel } from './accel.js';
import type { ImageFormat } from './qcow2.js';

export const QEMU_VM_RECORD_FILE = 'vm.json';

/** Direct kernel boot: what QEMU gets as -kernel, -initrd and -append. */
export interface QemuBoot {
  kernel: string;
  initrd: string;
  append: string;
}

/** How the spec's CPU model became QEMU's `-cpu`. */
export interface CpuMapping {
  /** The spec's model (or the default when it named none). */
  requested: string;
  /** What QEMU runs. */
  qemu: string;
  /** Why they differ; '' when they do not. */
  reason: string;
}

export interface QemuDiskRecord {
  /** The spec's disk name. */
  name: string;
  /** The disk's own image (absolute): the layer snapshots fold back into. */
  path: string;
  /** The image the guest writes now: `path`, or an overlay of an open snapshot (or one a crash left). */
  top: string;
  format: ImageFormat;
  /** The disk's virtio-blk qdev id, or for an adopted QEMU the qdev path query-block reports. */
  device: string;
  sizeBytes: number;
  /** The image is in doppel's datastore and goes with the VM (false for an adopted QEMU's own disks). */
  owned: boolean;
  /**
   * The images below `path` (absolute, bottom first) that are part of the VM's chain: a clone's or a restore's own
   * base (`<disk>.base.qcow2`), a linked clone's shared chain (another VM's frozen images), or the VM's own images
   * frozen by a `shareable` snapshot that linked clones may overlay. An image base made for a spec's `image` is not
   * listed.
   */
  bases: QemuBaseRecord[];
  /**
   * A clone or restore target still being filled: the base its header names, not yet attached in QEMU (QEMU opens
   * the disk with `backing: null` until then); '' once attached.
   */
  staged: string;
  /** The staged base is a linked clone's shared base: it is attached, never written. */
  stagedLinked: boolean;
  /** Changes QEMU's dirty bitmap does not know of, reported with the next checkpoint (see ExtraChanges). */
  extraChanges: ExtraChanges | null;
}

/** One image below a disk's own. */
export interface QemuBaseRecord {
  path: string;
  /**
   * Read-only and possibly another VM's base: a linked clone's base (another VM's image), or this VM's image that a
   * shareable snapshot froze. Never written again, and never deleted by this VM's destroy (simple rule: a shared
   * base outlives every VM, so no linked clone ever loses its base; removing it is left to the operator).
   */
  shared: boolean;
}

/**
 * Changes of a disk that did not go through its QEMU dirty bitmap: blocks a target's fill wrote (writeDiskBlocks)
 * and, for a clone, the source's changes it took over (inheritChanges). The next snapshot with a checkpoint
 * reports them OR-ed into QEMU's; its commit clears them (the new checkpoint covers them).
 */
export interface ExtraChanges {
  /**
   * Inherited (inheritChanges): `since` replaces the checkpoint QEMU's bitmap is relative to, and null means
   * tracking is lost. Not inherited: only the bits add to QEMU's, whose `since` stands.
   */
  inherited: boolean;
  since: string | null;
  /** Base64 of the little-endian bitmap words (one bit per 64 KiB block); '' for none. */
  bits: string;
}

export interface QemuNicRecord {
  mac: string;
  /** The qdev id (`set_link` names it). */
  id: string;
}

export interface QemuVmRecord {
  id: string;
  spec: VmSpec;
  cloneOf: string;
  networkIsolated: boolean;
  complete: boolean;
  adopted: boolean;
  qmpSocket: string;
  /** '' when unknown (an adopted QEMU). */
  serialSocket: string;
  /** Where doppel starts the QEMU's NBD server (snapshot views and dirty bitmaps are read through it). */
  nbdSocket: string;
  /** '' for an adopted QEMU. */
  pidFile: string;
  /** The QEMU's pid when it was last started or adopted; 0 when unknown. */
  pid: number;
  accel: QemuAccel;
  /** The versioned machine type the VM was first started with ('' for an adopted QEMU). */
  machineType: string;
  cpu: CpuMapping;
  /** null for an adopted QEMU (its command line is not known). */
  boot: QemuBoot | null;
  disks: QemuDiskRecord[];
  nics: QemuNicRecord[];
  /** Snapshots taken so far: numbers overlay files and nodes, so none is reused across restarts. */
  snapSeq: number;
  /** An incoming clone whose disks have no tracking bitmap yet: it starts once its migration landed. */
  trackingPending: boolean;
  /** How the VM was made: '' (created to run, or adopted), an incoming clone, or a restore target. */
  target: '' | 'incoming' | 'restore';
}

/** Writes the record by rename, synced, so a crash leaves the old record or the new one. */
export function writeQemuVmRecord(vmDir: string, r: QemuVmRecord): void {
  const path = join(vmDir, QEMU_VM_RECORD_FILE);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(r, null, 1));
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const int = (v: unknown): number => (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/** The record, or undefined when it is missing or unreadable (a VM whose creation never finished). */
export function readQemuVmRecord(vmDir: string): QemuVmRecord | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(join(vmDir, QEMU_VM_RECORD_FILE), 'utf8'));
  } catch {
    return undefined;
  }
  if (!isObj(raw) || typeof raw.id !== 'string' || !isObj(raw.spec) || !Array.isArray(raw.spec.disks)) return undefined;
  if (typeof raw.qmpSocket !== 'string' || !raw.qmpSocket || !Array.isArray(raw.disks) || !Array.isArray(raw.nics)) return undefined;
  const disks: QemuDiskRecord[] = [];
  for (const d of raw.disks) {
    if (!isObj(d) || typeof d.path !== 'string' || typeof d.name !== 'string') return undefined;
    const format = d.format === 'raw' ? 'raw' : 'qcow2';
    const x = isObj(d.extraChanges) ? d.extraChanges : null;
    const extraChanges: ExtraChanges | null = x
      ? { inherited: x.inherited === true, since: typeof x.since === 'string' ? x.since : null, bits: str(x.bits) }
      : null;
    disks.push({
      name: d.name,
      path: d.path,
      top: str(d.top) || d.path,
      format,
      device: str(d.device),
      sizeBytes: int(d.sizeBytes),
      owned: d.owned !== false,
      bases: Array.isArray(d.bases) ? d.bases.filter(isObj).flatMap((b) => (typeof b.path === 'string' && b.path ? [{ path: b.path, shared: b.shared === true }] : [])) : [],
      staged: str(d.staged),
      stagedLinked: d.stagedLinked === true,
      extraChanges,
    });
  }
  const nics: QemuNicRecord[] = raw.nics.filter(isObj).map((n) => ({ mac: str(n.mac), id: str(n.id) }));
  const cpu = isObj(raw.cpu) ? raw.cpu : {};
  const boot = isObj(raw.boot) && typeof raw.boot.kernel === 'string' ? { kernel: raw.boot.kernel, initrd: str(raw.boot.initrd), append: str(raw.boot.append) } : null;
  return {
    id: raw.id,
    spec: raw.spec as unknown as VmSpec,
    cloneOf: str(raw.cloneOf),
    networkIsolated: raw.networkIsolated === true,
    complete: raw.complete === true,
    adopted: raw.adopted === true,
    qmpSocket: raw.qmpSocket,
    serialSocket: str(raw.serialSocket),
    nbdSocket: str(raw.nbdSocket),
    pidFile: str(raw.pidFile),
    pid: int(raw.pid),
    accel: raw.accel === 'kvm' ? 'kvm' : 'tcg',
    machineType: str(raw.machineType),
    cpu: { requested: str(cpu.requested), qemu: str(cpu.qemu) || 'qemu64', reason: str(cpu.reason) },
    boot,
    disks,
    nics,
    snapSeq: int(raw.snapSeq),
    trackingPending: raw.trackingPending === true,
    target: raw.target === 'incoming' || raw.target === 'restore' ? raw.target : '',
  };
}
