/**
 * The qemu hypervisor driver: each VM is a QEMU process (TCG or KVM, see accel.ts) driven over QMP, with its disks
 * as qcow2 images in the datastore.
 *
 * On disk: `<dataDir>/vms/<id>/` holds the VM's record (vm.json), QEMU's log and pid file and, when the path is
 * short enough for a unix socket, its QMP, serial and NBD sockets (else they go to a directory under the system's
 * temp directory). The datastore (`<dataDir>/datastore` unless given) holds `datastore.json` (its id, made once),
 * `vms/<id>/<disk>.qcow2` (64 KiB clusters, plus snapshot overlays while one is open) and `images/<image>.qcow2`:
 * one blank base per image name, made once, that disks created from the image overlay.
 *
 * QEMU outlives the agent: close() lets go of the VMs' QMP connections and leaves their QEMUs running, and the
 * next load() re-adopts every VM whose QEMU still answers on its QMP socket; a VM whose QEMU is gone comes back
 * suspended on a new QEMU started from its disks (memory is lost, as after a host reboot).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, relative, sep } from 'node:path';
import {
  AlreadyExistsError,
  DEFAULT_CPU_MODEL,
  DoppelError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
  cpuModelInfo,
  newId,
  newIdentity,
  newMac,
  silentLogger,
  type ClusterConfig,
  type Logger,
  type VmExportConfig,
  type VmSpec,
} from '../../../../shared/src/mod.js';
import { ensureDatastoreId } from '../datastore-id.js';
import { describeAgainstCluster } from '../export-config.js';
import type { CreateVmOptions, DatastoreInfo, DiskView, HypervisorDriver } from '../driver.js';
import { detectAccel, type AccelDecision, type QemuAccel } from './accel.js';
import { queryBlockNodes } from './block-snapshot.js';
import { diskDeviceId, MAX_SOCKET_PATH_BYTES, nicDeviceId } from './command-line.js';
import { createQcow2 } from './qcow2.js';
import { QmpClient } from './qmp.js';
import { isQemuOf, notYet, QemuVm, QUIT_TIMEOUT_MS, waitGone } from './qemu-vm.js';
import { readQemuVmRecord, writeQemuVmRecord, type CpuMapping, type QemuBoot, type QemuDiskRecord, type QemuNicRecord, type QemuVmRecord } from './vm-record.js';

export type { QemuBoot } from './vm-record.js';
export { QemuVm } from './qemu-vm.js';

const MiB = 1024 * 1024;
const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export interface QemuDriverOptions {
  /** Where this host keeps its VMs' records (and, by default, its datastore). */
  dataDir: string;
  /** The datastore directory; default `<dataDir>/datastore`. */
  datastoreDir?: string;
  /**
   * The boot data of every VM this driver creates (direct kernel boot; the test guest in tests); null: firmware
   * boot (SeaBIOS) from the VM's first disk.
   */
  boot: QemuBoot | null;
  /** Default: detectAccel() at the first create. */
  accel?: AccelDecision | QemuAccel;
  /** The QEMU binary (default: DOPPEL_QEMU_BINARY or qemu-system-x86_64). */
  binary?: string;
  log?: Logger;
}

/**
 * The spec's CPU model as QEMU's `-cpu`: a model QEMU knows (doppel's catalog, or `max`) as it is; `host` only
 * under KVM (TCG gets `max`); anything else `qemu64`. The mapping is recorded with the VM.
 */
export function mapCpuModel(requested: string, accel: QemuAccel): CpuMapping {
  if (requested === 'host') {
    return accel === 'kvm' ? { requested, qemu: 'host', reason: '' } : { requested, qemu: 'max', reason: "'host' needs KVM; under TCG the guest gets 'max' (every feature TCG emulates)" };
  }
  if (requested === 'max' || cpuModelInfo(requested)) return { requested, qemu: requested, reason: '' };
  return { requested, qemu: 'qemu64', reason: `'${requested}' is not a CPU model doppel knows for QEMU; the guest gets 'qemu64'` };
}

/** The QEMU's pid, found by its command line naming the QMP socket (Linux /proc); 0 when none does. */
function findQemuPid(qmpSocket: string): number {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const pid = Number(e);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes('qemu') && cmd.includes(qmpSocket) && isQemuOf(pid, qmpSocket)) return pid;
    } catch {
      // Gone, or not ours to read.
    }
  }
  return 0;
}

/** Bytes under a directory as the host allocates them. */
function allocatedUnder(dir: string): number {
  let total = 0;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e);
    try {
      const st = statSync(p);
      total += st.isDirectory() ? allocatedUnder(p) : st.blocks * 512;
    } catch {
      // Removed meanwhile.
    }
  }
  return total;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * SIGKILLs every QEMU the driver started under `dataDir` (adopted ones are left alone) and returns how many. QEMUs
 * outlive their agent by design; this is for whoever removes the data directory with the agent: a private local
 * fleet, a test, a bench. Never called by the agent itself.
 */
export function killQemusUnder(dataDir: string): number {
  const vmsDir = join(dataDir, 'vms');
  let killed = 0;
  for (const id of existsSync(vmsDir) ? readdirSync(vmsDir) : []) {
    const rec = readQemuVmRecord(join(vmsDir, id));
    if (!rec || rec.adopted || !isQemuOf(rec.pid, rec.qmpSocket)) continue;
    try {
      process.kill(rec.pid, 'SIGKILL');
      killed++;
    } catch {
      // gone meanwhile
    }
  }
  return killed;
}

export class QemuDriver implements HypervisorDriver {
  readonly name = 'qemu';
  readonly datastore: DatastoreInfo;
  private readonly dsPath: string;
  private readonly vmsDir: string;
  private readonly dsVmsDir: string;
  private readonly imagesDir: string;
  private readonly boot: QemuBoot | null;
  private readonly binary: string | undefined;
  private readonly log: Logger;
  private readonly vms = new Map<string, QemuVm>();
  /** Names being created or adopted (not yet in `vms`). */
  private readonly claimed = new Set<string>();
  private accel: Promise<AccelDecision> | null;

  constructor(opts: QemuDriverOptions) {
    if (opts.boot) {
      for (const [field, p] of [['kernel', opts.boot.kernel], ['initrd', opts.boot.initrd]] as const) {
        if (p !== '' && !isAbsolute(p)) throw new InvalidArgumentError(`boot.${field} ${JSON.stringify(p)} is not an absolute path`);
        if (p !== '' && !existsSync(p)) throw new NotFoundError(`boot.${field} ${p} does not exist`);
      }
      if (!opts.boot.kernel) throw new InvalidArgumentError('a direct kernel boot needs a kernel');
    }
    this.boot = opts.boot ? { ...opts.boot } : null;
    this.binary = opts.binary;
    this.log = (opts.log ?? silentLogger()).child({ component: 'qemu-driver' });
    this.accel = opts.accel === undefined ? null : Promise.resolve(typeof opts.accel === 'string' ? { accel: opts.accel, reason: 'given to the driver', source: 'env' as const } : opts.accel);
    this.vmsDir = join(opts.dataDir, 'vms');
    mkdirSync(this.vmsDir, { recursive: true });
    this.dsPath = opts.datastoreDir ?? join(opts.dataDir, 'datastore');
    this.dsVmsDir = join(this.dsPath, 'vms');
    this.imagesDir = join(this.dsPath, 'images');
    mkdirSync(this.dsVmsDir, { recursive: true });
    mkdirSync(this.imagesDir, { recursive: true });
    this.datastore = { id: ensureDatastoreId(this.dsPath), path: this.dsPath };
  }

  /** The accelerator VMs get (detectAccel() once, unless the options chose it). */
  accelDecision(): Promise<AccelDecision> {
    this.accel ??= detectAccel({ ...(this.binary ? { binary: this.binary } : {}), logger: this.log }).catch((err: unknown) => {
      this.accel = null;
      throw err;
    });
    return this.accel;
  }

  private vmDirOf(id: string): string {
    return join(this.vmsDir, id);
  }

  private diskDirOf(id: string): string {
    return join(this.dsVmsDir, id);
  }

  /** Socket paths: in the VM's directory when they fit a unix socket address, else in a private temp directory. */
  private runtimeDir(id: string): string {
    const dir = this.vmDirOf(id);
    if (Buffer.byteLength(join(dir, 'serial.sock')) <= MAX_SOCKET_PATH_BYTES) return dir;
    const short = join(tmpdir(), `doppel-qemu-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`);
    mkdirSync(short, { recursive: true, mode: 0o700 });
    return short;
  }

  private macs(): Set<string> {
    const taken = new Set<string>();
    for (const vm of this.vms.values()) {
      if (vm.spec.identity) taken.add(vm.spec.identity.mac);
    }
    return taken;
  }

  private claimName(name: string): void {
    if (this.claimed.has(name) || [...this.vms.values()].some((v) => v.spec.name === name)) {
      throw new AlreadyExistsError(`a VM named '${name}' already exists on this host`);
    }
    this.claimed.add(name);
  }

  private newVm(record: QemuVmRecord): QemuVm {
    return new QemuVm({ record, vmDir: this.vmDirOf(record.id), diskDir: this.diskDirOf(record.id), log: this.log, ...(this.binary ? { binary: this.binary } : {}) });
  }

  /** The image's blank base, made once (by link(2), so two creators agree on one file). */
  private async ensureImage(image: string, sizeBytes: number): Promise<string> {
    const file = SAFE_NAME.test(image) ? image : `img-${createHash('sha256').update(image).digest('hex').slice(0, 16)}`;
    const path = join(this.imagesDir, `${file}.qcow2`);
    if (existsSync(path)) return path;
    const tmp = join(this.imagesDir, `.${file}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      await createQcow2(tmp, { sizeBytes });
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    return path;
  }

  private checkSpec(spec: VmSpec, opts: CreateVmOptions): void {
    if ((spec.bypass ?? []).length > 0) throw notYet('bypass volumes');
    if (opts.linkedDisks) throw notYet('linked disks (a linked clone on a shared datastore)');
    const names = new Set<string>();
    for (const d of spec.disks) {
      if (!SAFE_NAME.test(d.name)) throw new InvalidArgumentError(`disk name ${JSON.stringify(d.name)}: 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or digit`);
      if (names.has(d.name)) throw new InvalidArgumentError(`disk name '${d.name}' is used twice`);
      names.add(d.name);
      if (!Number.isSafeInteger(d.sizeMib) || d.sizeMib <= 0) throw new InvalidArgumentError(`disk '${d.name}' has a bad size (${d.sizeMib} MiB)`);
    }
  }

  async create(given: VmSpec, opts: CreateVmOptions = {}): Promise<QemuVm> {
    this.checkSpec(given, opts);
    this.claimName(given.name);
    try {
      return await this.createClaimed(given, opts);
    } finally {
      this.claimed.delete(given.name);
    }
  }

  private async createClaimed(given: VmSpec, opts: CreateVmOptions): Promise<QemuVm> {
    const spec: VmSpec = given.identity ? given : { ...given, identity: newIdentity(given.name, this.macs()) };
    const identity = spec.identity!;
    const accel = await this.accelDecision();
    const id = newId('vm');
    const vmDir = this.vmDirOf(id);
    const diskDir = this.diskDirOf(id);
    const target = opts.incoming === true || opts.restore === true;
    mkdirSync(vmDir, { recursive: true });
    mkdirSync(diskDir, { recursive: true });
    const run = this.runtimeDir(id);
    const taken = this.macs();
    taken.add(identity.mac);
    const nics: QemuNicRecord[] = (spec.nics ?? []).map((_, i) => {
      const mac = i === 0 ? identity.mac : newMac(taken);
      taken.add(mac);
      return { mac, id: nicDeviceId(i) };
    });
    const disks: QemuDiskRecord[] = spec.disks.map((d, i) => {
      const path = join(diskDir, `${d.name}.qcow2`);
      // A target's disk starts blank over a blank staged base (filled by writeDiskBlocks, then attached).
      const staged = target ? join(diskDir, `${d.name}.base.qcow2`) : '';
      return { name: d.name, path, top: path, format: 'qcow2', device: diskDeviceId(i), sizeBytes: d.sizeMib * MiB, owned: true, bases: [], staged, stagedLinked: false, extraChanges: null };
    });
    const record: QemuVmRecord = {
      id,
      spec,
      cloneOf: opts.cloneOf ?? '',
      networkIsolated: false,
      complete: false,
      adopted: false,
      qmpSocket: join(run, 'qmp.sock'),
      serialSocket: join(run, 'serial.sock'),
      nbdSocket: join(run, 'nbd.sock'),
      pidFile: join(vmDir, 'qemu.pid'),
      pid: 0,
      accel: accel.accel,
      machineType: '',
      cpu: mapCpuModel(spec.cpuModel || DEFAULT_CPU_MODEL, accel.accel),
      boot: this.boot ? { ...this.boot } : null,
      disks,
      nics,
      snapSeq: 0,
      trackingPending: opts.incoming === true,
      target: opts.incoming === true ? 'incoming' : opts.restore === true ? 'restore' : '',
    };
    let vm: QemuVm | undefined;
    try {
      // Incomplete until QEMU runs on the disks: a crash before then leaves a VM the next load deletes.
      writeQemuVmRecord(vmDir, record);
      for (const [i, d] of disks.entries()) {
        const image = spec.disks[i]!.image;
        if (d.staged) {
          // A target's disks are blank whatever the spec's image: the blocks come from the source or a backup. The
          // header names the staged base, which QEMU opens the disk without until the fill is done (see
          // QemuVm.writeDiskBlocks). By its absolute path for now: QEMU names a node whose backing was attached live
          // by its plain filename only when the header's name is the base's filename (a relative one gives a
          // `json:` pseudo-filename). The next QEMU start makes it relative again (QemuVm.launch).
          await createQcow2(d.staged, { sizeBytes: d.sizeBytes });
          await createQcow2(d.path, { sizeBytes: d.sizeBytes, backing: { path: d.staged, format: 'qcow2', unsafe: true } });
        } else if (image) {
          const base = await this.ensureImage(image, d.sizeBytes);
          // A relative name keeps the chain valid wherever the datastore is mounted.
          await createQcow2(d.path, { sizeBytes: d.sizeBytes, backing: { path: base, format: 'qcow2', headerName: relative(diskDir, base) } });
        } else {
          await createQcow2(d.path, { sizeBytes: d.sizeBytes });
        }
      }
      vm = this.newVm(record);
      await vm.launch({ ...(opts.incoming ? { incoming: true } : {}) });
      await vm.pinMachineType();
      // A migration target's disks are inactive until the migration ends: its tracking comes with the clone.
      if (!opts.incoming) await vm.startTracking();
      if (!target) vm.markComplete();
      if (record.cpu.reason) this.log.info({ vm: id, cpu: record.cpu }, 'CPU model mapped');
    } catch (err) {
      if (vm) await vm.destroy().catch(() => undefined);
      this.removeFiles(id, record);
      throw err;
    }
    this.vms.set(id, vm);
    if (!target) await vm.run();
    return vm;
  }

  /**
   * Removes a VM's record directory, its datastore directory and its runtime directory (an adopted QEMU's own disks
   * stay). Its images that are shared bases (frozen by a shareable snapshot: linked clones may overlay them) stay in
   * its datastore directory: a shared base is never deleted by a VM's destroy.
   */
  private removeFiles(id: string, record: QemuVmRecord | undefined): void {
    rmSync(this.vmDirOf(id), { recursive: true, force: true });
    const diskDir = this.diskDirOf(id);
    const keep = new Set((record?.disks ?? []).flatMap((d) => d.bases.filter((b) => b.shared && b.path.startsWith(diskDir + sep)).map((b) => b.path)));
    if (keep.size === 0) {
      rmSync(diskDir, { recursive: true, force: true });
    } else {
      for (const e of existsSync(diskDir) ? readdirSync(diskDir) : []) if (!keep.has(join(diskDir, e))) rmSync(join(diskDir, e), { recursive: true, force: true });
      this.log.info({ vm: id, kept: [...keep] }, 'shared bases stay on the datastore');
    }
    if (record) {
      const run = join(record.qmpSocket, '..');
      if (run !== this.vmDirOf(id) && run.startsWith(join(tmpdir(), 'doppel-qemu-'))) rmSync(run, { recursive: true, force: true });
    }
  }

  /**
   * Loads the VMs a previous agent left: each whose QEMU still runs and answers QMP is re-adopted as it is
   * (running or not); each other comes back suspended on a new QEMU started from its disks; an adopted one whose
   * QEMU is gone is forgotten; incomplete ones are deleted (their QEMU killed). A VM that cannot be loaded stays
   * on disk and is logged.
   */
  async load(): Promise<QemuVm[]> {
    const loaded: QemuVm[] = [];
    for (const id of readdirSync(this.vmsDir)) {
      if (this.vms.has(id)) continue;
      const rec = readQemuVmRecord(this.vmDirOf(id));
      if (!rec || rec.id !== id || !rec.complete) {
        if (rec && !rec.adopted && isQemuOf(rec.pid, rec.qmpSocket)) {
          try {
            process.kill(rec.pid, 'SIGKILL');
          } catch {
            // Gone meanwhile.
          }
          await waitGone(rec.pid, rec.qmpSocket, QUIT_TIMEOUT_MS);
        }
        this.log.info({ vm: id }, 'deleting a VM that never became complete');
        this.removeFiles(id, rec);
        continue;
      }
      try {
        const vm = await this.revive(rec);
        if (vm) {
          this.vms.set(id, vm);
          loaded.push(vm);
        }
      } catch (err) {
        this.log.warn({ err, vm: id }, 'VM not loaded; it stays on disk');
      }
    }
    return loaded;
  }

  private async revive(rec: QemuVmRecord): Promise<QemuVm | null> {
    const alive = rec.adopted ? findQemuPid(rec.qmpSocket) : isQemuOf(rec.pid, rec.qmpSocket) ? rec.pid : 0;
    const vm = this.newVm(rec);
    if (alive > 0) {
      let qmp: QmpClient;
      try {
        qmp = await QmpClient.connect(rec.qmpSocket, { timeoutMs: 5_000 });
      } catch (err) {
        throw new UnavailableError(`vm ${rec.id}: its QEMU (pid ${alive}) runs but does not answer on ${rec.qmpSocket}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      }
      try {
        rec.pid = alive;
        await vm.attach(qmp, { own: !rec.adopted });
        await vm.recover();
      } catch (err) {
        await qmp.close();
        throw err;
      }
      writeQemuVmRecord(this.vmDirOf(rec.id), rec);
      this.log.info({ vm: rec.id, pid: alive, state: vm.state }, 're-adopted a running QEMU');
      return vm;
    }
    if (rec.adopted) {
      this.log.info({ vm: rec.id, qmp: rec.qmpSocket }, 'an adopted QEMU is gone; its record is dropped');
      this.removeFiles(rec.id, rec);
      return null;
    }
    await vm.launch();
    await vm.recover();
    this.log.info({ vm: rec.id, pid: vm.pid }, 'QEMU restarted from the disks, suspended');
    return vm;
  }

  /**
   * Takes over a QEMU doppel did not start, by its QMP socket: its configuration is read over QMP (run state, disks,
   * memory, vCPUs and their model, NICs) into a VM record named `name`. The agent then runs, suspends, snapshots and
   * destroys it like its own (destroy quits the QEMU but leaves its disk images); it is never restarted. A missing
   * socket is a NotFoundError naming the path; nothing listening there an UnavailableError; not QMP a
   * QmpProtocolError.
   */
  async adopt(qmpSocketPath: string, name: string): Promise<QemuVm> {
    if (typeof qmpSocketPath !== 'string' || !isAbsolute(qmpSocketPath)) throw new InvalidArgumentError(`QMP socket path ${JSON.stringify(qmpSocketPath)} is not an absolute path`);
    for (const vm of this.vms.values()) {
      if (vm.qmpSocketPath === qmpSocketPath) throw new AlreadyExistsError(`the QEMU at ${qmpSocketPath} is already vm ${vm.id} ('${vm.spec.name}')`);
    }
    this.claimName(name);
    try {
      return await this.adoptClaimed(qmpSocketPath, name);
    } finally {
      this.claimed.delete(name);
    }
  }

  private async adoptClaimed(qmpSocketPath: string, name: string): Promise<QemuVm> {
    let qmp: QmpClient;
    try {
      qmp = await QmpClient.connect(qmpSocketPath, { timeoutMs: 5_000 });
    } catch (err) {
      const why = `cannot adopt '${name}' from QMP socket ${qmpSocketPath}`;
      if (err instanceof NotFoundError) throw new NotFoundError(`${why}: ${err.message}`, { cause: err });
      if (err instanceof DoppelError && err.code === 'UNAVAILABLE') throw new UnavailableError(`${why}: ${err.message}`, { cause: err });
      if (err instanceof InvalidArgumentError) throw new InvalidArgumentError(`${why}: ${err.message}`, { cause: err });
      throw err;
    }
    const id = newId('vm');
    let record: QemuVmRecord | undefined;
    try {
      const found = await readForeignConfig(qmp, name);
      const identity = newIdentity(name, this.macs());
      if (found.nics[0]) identity.mac = found.nics[0].mac;
      if (found.uuid) identity.uuid = found.uuid;
      const spec: VmSpec = {
        name,
        memoryMib: found.memoryMib,
        vcpus: found.vcpus,
        cpuModel: found.cpuModel,
        workload: { dirtyRate: 0, pattern: 'uniform', seed: 0, diskWriteRate: 0 },
        disks: found.disks.map((d) => ({ name: d.name, sizeMib: Math.ceil(d.sizeBytes / MiB), image: '' })),
        nics: found.nics.map(() => ({ network: '' })),
        identity,
      };
      const vmDir = this.vmDirOf(id);
      mkdirSync(vmDir, { recursive: true });
      mkdirSync(this.diskDirOf(id), { recursive: true });
      const run = this.runtimeDir(id);
      record = {
        id,
        spec,
        cloneOf: '',
        networkIsolated: false,
        complete: true,
        adopted: true,
        qmpSocket: qmpSocketPath,
        serialSocket: '',
        nbdSocket: join(run, 'nbd.sock'),
        pidFile: '',
        pid: findQemuPid(qmpSocketPath),
        accel: found.accel,
        machineType: '',
        cpu: { requested: found.cpuModel, qemu: found.cpuModel, reason: '' },
        boot: null,
        disks: found.disks,
        nics: found.nics,
        snapSeq: 0,
        trackingPending: false,
        target: '',
      };
      writeQemuVmRecord(vmDir, record);
      const vm = this.newVm(record);
      await vm.attach(qmp, { own: false });
      this.vms.set(id, vm);
      this.log.info({ vm: id, qmp: qmpSocketPath, pid: record.pid, disks: found.disks.length }, 'adopted a QEMU');
      return vm;
    } catch (err) {
      await qmp.close();
      this.removeFiles(id, record);
      throw err;
    }
  }

  get(id: string): QemuVm | undefined {
    return this.vms.get(id);
  }

  list(): QemuVm[] {
    return [...this.vms.values()];
  }

  async destroy(id: string): Promise<boolean> {
    const vm = this.vms.get(id);
    if (!vm) return false;
    this.vms.delete(id);
    const record = readQemuVmRecord(this.vmDirOf(id));
    try {
      await vm.destroy();
    } finally {
      this.removeFiles(id, record);
    }
    return true;
  }

  /** No storage snapshot pins layers on qemu (createStorageSnapshot is not supported yet): nothing to drop. */
  async unpinLayers(): Promise<void> {
    // Nothing pinned.
  }

  async dropPins(): Promise<number> {
    return 0;
  }

  datastoreSpace(): { usedMib: number; freeMib: number } {
    const fs = statfsSync(this.dsPath);
    return { usedMib: Math.round(allocatedUnder(this.dsPath) / MiB), freeMib: Math.floor((fs.bavail * fs.bsize) / MiB) };
  }

  /** The VM's configuration against the cluster: each disk is a qcow2 file, the disk's own image in the datastore. */
  describeExport(vmId: string, cluster: ClusterConfig): VmExportConfig {
    const vm = this.vms.get(vmId);
    if (!vm) throw new NotFoundError(`vm '${vmId}' not found on this host`);
    return describeAgainstCluster({ id: vm.id, spec: vm.spec, datastorePath: this.dsPath, disks: vm.diskFiles().map((d) => ({ format: d.format, path: d.path })) }, cluster);
  }

  openChainViews(): { views: DiskView[]; close(): void } {
    throw notYet('openChainViews (reading storage snapshots)');
  }

  /** A clean stop of the agent: open snapshots are folded back and the QMP connections closed; the QEMUs run on. */
  async close(): Promise<void> {
    const vms = [...this.vms.values()];
    this.vms.clear();
    await Promise.all(vms.map((vm) => vm.close()));
  }
}

/** What readForeignConfig finds. */
interface ForeignConfig {
  running: boolean;
  memoryMib: number;
  vcpus: number;
  cpuModel: string;
  accel: QemuAccel;
  uuid: string;
  disks: QemuDiskRecord[];
  nics: QemuNicRecord[];
}

/** A QEMU's configuration read over QMP (query-status, query-block, query-named-block-nodes, ...). */
async function readForeignConfig(qmp: QmpClient, name: string): Promise<ForeignConfig> {
  const status = await qmp.queryStatus();
  const mem = await qmp.execute<unknown>('query-memory-size-summary');
  const memBytes = isObj(mem) ? (typeof mem['base-memory'] === 'number' ? mem['base-memory'] : 0) + (typeof mem['plugged-memory'] === 'number' ? mem['plugged-memory'] : 0) : 0;
  const cpus = await qmp.execute<unknown>('query-cpus-fast');
  const cpuList = Array.isArray(cpus) ? cpus.filter(isObj) : [];
  let cpuModel = DEFAULT_CPU_MODEL;
  const qomPath = cpuList[0]?.['qom-path'];
  if (typeof qomPath === 'string') {
    const type = await qmp.execute<unknown>('qom-get', { path: qomPath, property: 'type' }).catch(() => null);
    if (typeof type === 'string') cpuModel = type.replace(/-x86_64-cpu$/, '');
  }
  const kvm = await qmp.queryKvm().catch(() => ({ enabled: false, present: false }));
  const uuidReply = await qmp.execute<unknown>('query-uuid').catch(() => null);
  const uuid = isObj(uuidReply) && typeof uuidReply.UUID === 'string' && !/^[0-]+$/.test(uuidReply.UUID) ? uuidReply.UUID.toLowerCase() : '';

  const nodes = await queryBlockNodes(qmp);
  const block = await qmp.execute<unknown>('query-block');
  const disks: QemuDiskRecord[] = [];
  const names = new Set<string>();
  for (const b of Array.isArray(block) ? block.filter(isObj) : []) {
    const qdev = typeof b.qdev === 'string' ? b.qdev : '';
    const inserted = isObj(b.inserted) ? b.inserted : null;
    if (!qdev || !inserted || inserted.ro === true) continue;
    const nodeName = typeof inserted['node-name'] === 'string' ? inserted['node-name'] : '';
    const node = nodes.find((n) => n.nodeName === nodeName);
    const file = node?.filename || (typeof inserted.file === 'string' ? inserted.file : '');
    const driver = node?.driver ?? (typeof inserted.drv === 'string' ? inserted.drv : '');
    if (!file || (driver !== 'qcow2' && driver !== 'raw')) continue;
    const m = /^\/machine\/peripheral\/([^/]+)/.exec(qdev);
    let diskName = m?.[1] && SAFE_NAME.test(m[1]) ? m[1] : `disk${disks.length}`;
    if (names.has(diskName)) diskName = `${diskName}-${disks.length}`;
    names.add(diskName);
    const image = isObj(inserted.image) ? inserted.image : {};
    const sizeBytes = node?.virtualSize || (typeof image['virtual-size'] === 'number' ? image['virtual-size'] : 0);
    disks.push({ name: diskName, path: file, top: file, format: driver, device: qdev, sizeBytes, owned: false, bases: [], staged: '', stagedLinked: false, extraChanges: null });
  }
  const rx = await qmp.execute<unknown>('query-rx-filter').catch(() => []);
  const nics: QemuNicRecord[] = (Array.isArray(rx) ? rx.filter(isObj) : []).flatMap((n) =>
    typeof n.name === 'string' && typeof n['main-mac'] === 'string' ? [{ id: n.name, mac: n['main-mac'].toLowerCase() }] : [],
  );
  if (cpuList.length === 0 || memBytes <= 0) throw new FailedPreconditionError(`cannot adopt '${name}': the QEMU at ${qmp.socketPath} reports no vCPUs or no memory`);
  return {
    running: status.running,
    memoryMib: Math.ceil(memBytes / MiB),
    vcpus: cpuList.length,
    cpuModel,
    accel: kvm.enabled ? 'kvm' : 'tcg',
    uuid,
    disks,
    nics,
  };
}
