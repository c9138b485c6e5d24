/**
 * The QEMU command line for a VM, as a pure function of its spec. A migration's source and destination must be
 * started from the same spec (`-kernel`, `-initrd` and `-append` included: the boot data is part of the migrated
 * machine); only `incoming`, `paused` and the socket paths may differ.
 */
import { isAbsolute } from 'node:path';
import { InvalidArgumentError } from '../../../../shared/src/errors.js';
import type { QemuAccel } from './accel.js';

export type QemuDiskFormat = 'qcow2' | 'raw';

export interface QemuDiskSpec {
  /** Absolute path of the image. */
  path: string;
  format: QemuDiskFormat;
  readOnly?: boolean;
  /**
   * Open the image without the backing file its header names (`backing: null`): a clone or restore target whose
   * staged base is still being filled (it is attached later, with blockdev-reopen).
   */
  noBacking?: boolean;
}

export interface QemuNicSpec {
  /** Unicast MAC, "52:54:00:12:34:56". */
  mac: string;
  /**
   * 'user' (default): QEMU's user-mode network. 'none': the NIC exists but has no backend (its link is dead), so
   * the guest's device set stays the same as its source's (a migration needs that) while it reaches nobody.
   */
  netdev?: 'user' | 'none';
}

export interface QemuMachineSpec {
  /** VM name: letters, digits, `.`, `_`, `-`; 1 to 64 characters. */
  name: string;
  memoryMib: number;
  vcpus: number;
  /** A QEMU CPU model: "max", "qemu64", "Skylake-Client-v4", or "host" (KVM only). */
  cpuModel: string;
  /**
   * Versioned machine type, e.g. "pc-q35-10.0" (default "q35", the newest of this QEMU). Pin it when VMs migrate
   * between hosts whose QEMU versions may differ: "q35" names a different machine on each.
   */
  machineType?: string;
  /** Direct kernel boot: absolute paths. */
  kernel?: string;
  initrd?: string;
  /** Kernel command line (needs `kernel`). */
  append?: string;
  /** Firmware image for `-bios` (default: QEMU's SeaBIOS). */
  firmware?: string;
  /** In order; disk i is block node `disk<i>` (see diskNodeName). */
  disks: QemuDiskSpec[];
  /** In order; NIC i is device `nic<i>`. */
  nics: QemuNicSpec[];
  /** Unix socket (server) for the first serial port. */
  serialSocket: string;
  /**
   * A file that keeps everything the guest prints on its first serial port (appended across restarts), whether or
   * not anybody is connected to the socket.
   */
  serialLog?: string;
  /** The SMBIOS system UUID (lower case, 8-4-4-4-12 hex). */
  uuid?: string;
  /** Unix socket (server) for the QMP monitor. */
  qmpSocket: string;
  /** Where QEMU writes its pid (lets a restarted agent find and signal an adopted QEMU). */
  pidFile?: string;
  accel: QemuAccel;
  /** Wait for an incoming migration, started later with `migrate-incoming`. */
  incoming?: 'defer';
  /** `-S`: vCPUs stopped until `cont`. A clone target needs both this and `incoming`, so it waits paused. */
  paused?: boolean;
}

/** The block node name of disk `index`: what snapshots, dirty bitmaps and NBD exports address. */
export function diskNodeName(index: number): string {
  return `disk${index}`;
}

/** The qdev id of disk `index`'s virtio-blk device. */
export function diskDeviceId(index: number): string {
  return `disk${index}-dev`;
}

/** The qdev id of NIC `index` (for `set_link`). */
export function nicDeviceId(index: number): string {
  return `nic${index}`;
}

/** Longest unix socket path: sun_path holds 108 bytes with the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;
export const MAX_MEMORY_MIB = 1024 * 1024;
export const MAX_VCPUS = 255;

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const CPU_MODEL_RE = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/;
const MACHINE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * QEMU's argv (without the binary) for a spec. InvalidArgumentError, naming the field, for anything QEMU would
 * refuse or misparse: relative paths, control characters, a multicast MAC, a socket path too long for a unix
 * socket, fractional memory, `host` CPU under TCG.
 */
export function buildQemuArgs(spec: QemuMachineSpec): string[] {
  validate(spec);
  const args: string[] = [
    '-name', `guest=${spec.name},process=doppel-${spec.name}`,
    '-machine', `${spec.machineType ?? 'q35'}`,
    '-accel', spec.accel,
    '-cpu', spec.cpuModel,
    '-m', String(spec.memoryMib),
    '-smp', String(spec.vcpus),
    '-nodefaults',
    '-no-user-config',
    '-display', 'none',
    '-msg', 'timestamp=on',
    '-chardev', `socket,id=qmp,path=${opt(spec.qmpSocket)},server=on,wait=off`,
    '-mon', 'chardev=qmp,mode=control',
    '-chardev', `socket,id=serial0,path=${opt(spec.serialSocket)},server=on,wait=off${spec.serialLog !== undefined ? `,logfile=${opt(spec.serialLog)},logappend=on` : ''}`,
    '-device', 'isa-serial,chardev=serial0',
  ];
  if (spec.uuid !== undefined) args.push('-uuid', spec.uuid);
  if (spec.pidFile !== undefined) args.push('-pidfile', spec.pidFile);
  if (spec.firmware !== undefined) args.push('-bios', spec.firmware);
  if (spec.kernel !== undefined) args.push('-kernel', spec.kernel);
  if (spec.initrd !== undefined) args.push('-initrd', spec.initrd);
  if (spec.append !== undefined) args.push('-append', spec.append);
  spec.disks.forEach((disk, i) => {
    const node = diskNodeName(i);
    // JSON syntax: no comma escaping, so any path QEMU can open works.
    args.push('-blockdev', JSON.stringify({
      'node-name': `${node}-file`,
      driver: 'file',
      filename: disk.path,
      'read-only': disk.readOnly === true,
      aio: 'threads',
      cache: { direct: false, 'no-flush': false },
    }));
    args.push('-blockdev', JSON.stringify({
      'node-name': node,
      driver: disk.format,
      file: `${node}-file`,
      'read-only': disk.readOnly === true,
      discard: 'unmap',
      ...(disk.noBacking ? { backing: null } : {}),
    }));
    args.push('-device', `virtio-blk-pci,drive=${node},id=${diskDeviceId(i)}`);
  });
  spec.nics.forEach((nic, i) => {
    const dev = nicDeviceId(i);
    if ((nic.netdev ?? 'user') === 'user') {
      args.push('-netdev', `user,id=net${i}`);
      args.push('-device', `virtio-net-pci,netdev=net${i},mac=${nic.mac},id=${dev}`);
    } else {
      args.push('-device', `virtio-net-pci,mac=${nic.mac},id=${dev}`);
    }
  });
  if (spec.paused) args.push('-S');
  if (spec.incoming !== undefined) args.push('-incoming', spec.incoming);
  return args;
}

/** Escapes a value inside a QemuOpts list ("a,b" → "a,,b"). */
function opt(value: string): string {
  return value.replaceAll(',', ',,');
}

function validate(spec: QemuMachineSpec): void {
  if (!NAME_RE.test(spec.name)) {
    throw new InvalidArgumentError(`VM name ${JSON.stringify(spec.name)}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit`);
  }
  const where = `VM ${spec.name}`;
  if (!Number.isSafeInteger(spec.memoryMib) || spec.memoryMib < 1 || spec.memoryMib > MAX_MEMORY_MIB) {
    throw new InvalidArgumentError(`${where}: memoryMib ${spec.memoryMib} is not a whole number of MiB in 1..${MAX_MEMORY_MIB}`);
  }
  if (!Number.isSafeInteger(spec.vcpus) || spec.vcpus < 1 || spec.vcpus > MAX_VCPUS) {
    throw new InvalidArgumentError(`${where}: vcpus ${spec.vcpus} is not a whole number in 1..${MAX_VCPUS}`);
  }
  if (!CPU_MODEL_RE.test(spec.cpuModel)) throw new InvalidArgumentError(`${where}: cpu model ${JSON.stringify(spec.cpuModel)} is not a QEMU CPU model name`);
  if (spec.cpuModel === 'host' && spec.accel !== 'kvm') throw new InvalidArgumentError(`${where}: cpu model "host" needs KVM, not ${spec.accel}`);
  if (spec.accel !== 'kvm' && spec.accel !== 'tcg') throw new InvalidArgumentError(`${where}: accel ${JSON.stringify(spec.accel)} is not kvm or tcg`);
  if (spec.machineType !== undefined && !(MACHINE_RE.test(spec.machineType) && spec.machineType.includes('q35'))) {
    throw new InvalidArgumentError(`${where}: machine type ${JSON.stringify(spec.machineType)} is not a q35 machine type`);
  }
  for (const [field, path] of [
    ['kernel', spec.kernel],
    ['initrd', spec.initrd],
    ['firmware', spec.firmware],
    ['pidFile', spec.pidFile],
    ['serialLog', spec.serialLog],
  ] as const) {
    if (path !== undefined) checkPath(where, field, path);
  }
  checkSocket(where, 'qmpSocket', spec.qmpSocket);
  checkSocket(where, 'serialSocket', spec.serialSocket);
  if (spec.uuid !== undefined && !UUID_RE.test(spec.uuid)) throw new InvalidArgumentError(`${where}: uuid ${JSON.stringify(spec.uuid)} is not a lower-case UUID like 123e4567-e89b-12d3-a456-426614174000`);
  if (spec.qmpSocket === spec.serialSocket) throw new InvalidArgumentError(`${where}: qmpSocket and serialSocket are the same path ${spec.qmpSocket}`);
  if (spec.kernel === undefined && spec.initrd !== undefined) throw new InvalidArgumentError(`${where}: initrd needs a kernel`);
  if (spec.kernel === undefined && spec.append !== undefined) throw new InvalidArgumentError(`${where}: append needs a kernel`);
  if (spec.append !== undefined && hasControl(spec.append)) throw new InvalidArgumentError(`${where}: append holds a control character`);
  if (spec.incoming !== undefined && spec.incoming !== 'defer') throw new InvalidArgumentError(`${where}: incoming must be 'defer'`);
  const seen = new Set<string>();
  spec.disks.forEach((disk, i) => {
    checkPath(where, `disks[${i}].path`, disk.path);
    if (disk.format !== 'qcow2' && disk.format !== 'raw') throw new InvalidArgumentError(`${where}: disks[${i}].format ${JSON.stringify(disk.format)} is not qcow2 or raw`);
    if (seen.has(disk.path)) throw new InvalidArgumentError(`${where}: disks[${i}].path ${disk.path} is used by two disks`);
    seen.add(disk.path);
  });
  const macs = new Set<string>();
  spec.nics.forEach((nic, i) => {
    if (!MAC_RE.test(nic.mac)) throw new InvalidArgumentError(`${where}: nics[${i}].mac ${JSON.stringify(nic.mac)} is not a lower-case MAC like 52:54:00:12:34:56`);
    if (parseInt(nic.mac.slice(0, 2), 16) & 1) throw new InvalidArgumentError(`${where}: nics[${i}].mac ${nic.mac} is a multicast address`);
    if (macs.has(nic.mac)) throw new InvalidArgumentError(`${where}: nics[${i}].mac ${nic.mac} is used by two NICs`);
    macs.add(nic.mac);
    if (nic.netdev !== undefined && nic.netdev !== 'user' && nic.netdev !== 'none') {
      throw new InvalidArgumentError(`${where}: nics[${i}].netdev ${JSON.stringify(nic.netdev)} is not user or none`);
    }
  });
}

function hasControl(s: string): boolean {
  return /[\u0000-\u001f\u007f]/.test(s);
}

function checkPath(where: string, field: string, path: string): void {
  if (!path || !isAbsolute(path)) throw new InvalidArgumentError(`${where}: ${field} ${JSON.stringify(path)} is not an absolute path`);
  if (hasControl(path)) throw new InvalidArgumentError(`${where}: ${field} ${JSON.stringify(path)} holds a control character`);
}

function checkSocket(where: string, field: string, path: string): void {
  checkPath(where, field, path);
  const bytes = Buffer.byteLength(path);
  if (bytes > MAX_SOCKET_PATH_BYTES) {
    throw new InvalidArgumentError(`${where}: ${field} ${path} is ${bytes} bytes, over the ${MAX_SOCKET_PATH_BYTES} a unix socket path may have`);
  }
}
