/** Commands that talk to the coordinator's API: hosts, vms, vm, clone, jobs, job, events. */
import { InvalidArgumentError } from '../../../shared/src/mod.js';
import { CoordinatorClient, type Job } from '../client.js';
import { flag, int, list, parse, str, type Options } from '../args.js';
import { mib, printJson, Progress, table } from '../output.js';
import { CLIENT_SECURITY_HELP, CLIENT_SECURITY_OPTIONS, clientSecurity } from '../security.js';

export const COMMON: Options = { coordinator: { type: 'string' }, json: { type: 'boolean' }, ...CLIENT_SECURITY_OPTIONS };

function client(p: ReturnType<typeof parse>): CoordinatorClient {
  const addr = str(p, 'coordinator', process.env.DOPPEL_COORDINATOR ?? '127.0.0.1:7400');
  return new CoordinatorClient(addr, clientSecurity(p, addr));
}

export async function withClient<T>(p: ReturnType<typeof parse>, fn: (c: CoordinatorClient) => Promise<T>): Promise<T> {
  const c = client(p);
  try {
    return await fn(c);
  } finally {
    c.close();
  }
}

export const API_COMMON_HELP = `  --coordinator ADDR   coordinator gRPC address (default 127.0.0.1:7400, env DOPPEL_COORDINATOR)
  --json               print JSON instead of a table
${CLIENT_SECURITY_HELP}`;

export async function hostsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, COMMON);
  if (flag(p, 'help')) return void console.log(`doppel hosts: list the fleet's hosts.\n\n${API_COMMON_HELP}`), 0;
  const hosts = await withClient(p, (c) => c.hosts());
  if (flag(p, 'json')) return printJson({ hosts }), 0;
  console.log(
    table(
      hosts.map((h) => ({
        name: h.name,
        state: h.state,
        driver: h.accel ? `${h.driver} (${h.accel})` : h.driver,
        vms: h.vmCount,
        'mem used/total': `${h.usedMemoryMib}/${h.capacity?.memoryMib ?? 0} MiB`,
        cpus: h.capacity?.cpus ?? 0,
        'data plane': h.dataAddr,
        'agent rss': mib(h.agentRssBytes),
      })),
    ),
  );
  return 0;
}

export async function vmsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { ...COMMON, host: { type: 'string' } });
  if (flag(p, 'help')) return void console.log(`doppel vms [--host NAME]: list VMs on all hosts (or one).\n\n${API_COMMON_HELP}`), 0;
  const vms = await withClient(p, (c) => c.vms(str(p, 'host')));
  if (flag(p, 'json')) return printJson({ vms }), 0;
  console.log(
    table(
      vms.map((v) => ({
        id: v.id,
        name: v.name,
        host: v.host,
        state: v.state,
        hostname: v.hostname,
        mac: v.mac,
        memory: `${v.memoryMib} MiB`,
        workload: v.workload ? `${v.workload.dirtyRate} pages/s ${v.workload.pattern}, ${v.workload.diskWriteRate} disk writes/s` : '',
        disks: v.disks.map((d) => `${d.name}:${d.sizeMib}M`).join(' '),
        'clone of': v.cloneOf,
      })),
    ),
  );
  return 0;
}

export const VM_HELP = `doppel vm create NAME [options]: create and start a VM.
doppel vm run VM: run a VM (a finished clone waits suspended until this).
doppel vm destroy VM: stop and remove a VM (refused while a job runs on it).
doppel vm storage VM: what its disks hold on the datastore: its own overlays, and the shared
                     bases it reads (a linked or hot clone shares its source's frozen layers).
doppel vm adopt NAME --host HOST --qmp SOCKET: take a QEMU started outside doppel under the
                     care of HOST's agent (qemu driver), by the path of its QMP unix socket on
                     that host. Its disks stay where they are; doppel never restarts it.

  --host NAME          host to place it on (default: the host with the most free memory)
  --memory-mib N       guest memory (default 256)
  --vcpus N            (default 1)
  --dirty-rate N       pages per second the guest workload writes (default 0, idle)
  --pattern P          uniform | hotset | sequential (default uniform)
  --seed N             content and workload seed (default 1)
  --disk NAME:MIB[:IMAGE]  a disk (repeatable; default one 64 MiB disk 'disk0' of image 'base');
                       IMAGE names a template: VMs of one image share their base blocks
  --disk-write-rate N  4 KiB disk writes per second the guest makes (default 0)
  --bypass NAME:MIB    a bypass volume (repeatable): made on the host's storage array (agent --array),
                       written by the guest past the hypervisor, backed up time-consistently (seed 001)
  --bypass-write-rate N  4 KiB writes per second the guest makes to its bypass volumes (default 0)
  --token-rate N       consistency-token steps per second: the same increasing number to the first disk
                       and the first bypass volume in one step (default 0)
  --hostname NAME      the guest's hostname, an RFC 1123 label (default: the VM's name)
  --mac MAC            the NIC's MAC address xx:xx:xx:xx:xx:xx, refused if a VM in the fleet has it
                       (default: a new one under 52:54:00, unique in the fleet)
  --network NAME       a NIC on this network of the host's cluster (repeatable; default: no NIC)
  --cpu-model MODEL    the CPU model the guest sees, one the cluster offers (default: its first)
${API_COMMON_HELP}`;

/** Parses --disk NAME:MIB[:IMAGE]. */
/** `NAME:MIB`: a bypass volume on the host's storage array. */
function bypassOption(text: string): { name: string; sizeMib: number } {
  const [name, size, ...rest] = text.split(':');
  if (!name || !size || rest.length > 0 || !/^\d+$/.test(size)) throw new InvalidArgumentError(`--bypass takes NAME:MIB (got '${text}')`);
  return { name, sizeMib: Number(size) };
}

function diskOption(text: string): { name: string; sizeMib: number; image: string } {
  const m = /^([^:]+):(\d+)(?::([^:]*))?$/.exec(text);
  if (!m) throw new InvalidArgumentError(`--disk must be NAME:MIB[:IMAGE] (got '${text}')`);
  return { name: m[1]!, sizeMib: Number(m[2]), image: m[3] ?? '' };
}

export async function vmCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...COMMON,
    host: { type: 'string' },
    'memory-mib': { type: 'string' },
    vcpus: { type: 'string' },
    'dirty-rate': { type: 'string' },
    pattern: { type: 'string' },
    seed: { type: 'string' },
    disk: { type: 'string', multiple: true },
    'disk-write-rate': { type: 'string' },
    bypass: { type: 'string', multiple: true },
    'token-rate': { type: 'string' },
    'bypass-write-rate': { type: 'string' },
    hostname: { type: 'string' },
    mac: { type: 'string' },
    network: { type: 'string', multiple: true },
    'cpu-model': { type: 'string' },
    qmp: { type: 'string' },
  });
  const [sub, name] = p.positionals;
  if (flag(p, 'help') || !sub) return void console.log(VM_HELP), sub || flag(p, 'help') ? 0 : 2;
  if (!name) throw new InvalidArgumentError(`doppel vm ${sub} needs a VM name`);
  if (sub === 'destroy') {
    const destroyed = await withClient(p, (c) => c.destroyVm(name));
    if (flag(p, 'json')) return printJson({ vm: name, destroyed }), 0;
    console.log(destroyed ? `vm ${name} destroyed` : `vm ${name} was already gone`);
    return 0;
  }
  if (sub === 'storage') {
    const st = await withClient(p, (c) => c.vmStorage(name));
    if (flag(p, 'json')) return printJson(st), 0;
    console.log(`vm ${name}: ${mib(st.ownBytes)} in its own layers, ${mib(st.sharedBytes)} in shared bases`);
    console.log(table(st.layers.map((l) => ({ disk: l.disk, layer: l.id, data: mib(l.bytes), shared: l.shared ? 'yes' : 'no (own)' }))));
    return 0;
  }
  if (sub === 'adopt') {
    const vm = await withClient(p, (c) => c.adoptVm({ name, host: str(p, 'host'), qmpSocket: str(p, 'qmp') }));
    if (flag(p, 'json')) return printJson(vm), 0;
    console.log(`vm ${vm.name} (${vm.id}) adopted on ${vm.host}: ${vm.state}`);
    return 0;
  }
  if (sub !== 'create' && sub !== 'run') throw new InvalidArgumentError(`unknown subcommand 'vm ${sub}' (create, run, destroy, storage, adopt)`);
  const vm = await withClient(p, (c) =>
    sub === 'run'
      ? c.runVm(name)
      : c.createVm({
          name,
          host: str(p, 'host'),
          memoryMib: int(p, 'memory-mib', 256),
          vcpus: int(p, 'vcpus', 1),
          workload: {
            dirtyRate: int(p, 'dirty-rate', 0),
            pattern: str(p, 'pattern', 'uniform'),
            seed: int(p, 'seed', 1),
            diskWriteRate: int(p, 'disk-write-rate', 0),
            tokenRate: int(p, 'token-rate', 0),
            bypassWriteRate: int(p, 'bypass-write-rate', 0),
          },
          disks: list(p, 'disk').map(diskOption),
          bypass: list(p, 'bypass').map(bypassOption),
          hostname: str(p, 'hostname'),
          mac: str(p, 'mac'),
          networks: list(p, 'network'),
          cpuModel: str(p, 'cpu-model'),
        }),
  );
  if (flag(p, 'json')) return printJson(vm), 0;
  console.log(`vm ${vm.name} (${vm.id}) is ${vm.state} on ${vm.host}; hostname ${vm.hostname || '-'}, MAC ${vm.mac || '-'}`);
  return 0;
}

export const CLONE_HELP = `doppel clone VM [options]: live-clone a running VM to a second host by iterative pre-copy.

The source keeps running; it is suspended only for the final switchover. The clone
waits, suspended, until 'doppel vm run CLONE'.

  --to HOST                 target host (default: the host with the most free memory)
  --name NAME               the clone's name (default VM-clone-XXXXXX)
  --hostname NAME           the clone's hostname (default: its name); the clone always gets a new
                            UUID, MAC address and machine id
  --hot                     hot clone (seed 004): the source never stops; its memory writes are buffered
                            while the frozen image is copied, then merged back; disks share a
                            copy-on-write base on a shared datastore
  --copy-disks              with --hot, copy the disks in full to a target that does not see the
                            source's datastore
  --max-downtime-ms N       allowed switchover time (default 300)
  --max-rounds N            pre-copy round limit (default 30)
  --on-non-convergence P    refuse (default) | warn: what to do when pre-copy is not predicted to converge
  --max-bandwidth-mbps N    cap the page stream (MB/s, default: none)
  --verify                  hash source and clone memory (reported apart from the downtime)
  --wait                    wait for the job and show its progress
${API_COMMON_HELP}`;

export async function cloneCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...COMMON,
    to: { type: 'string' },
    name: { type: 'string' },
    'max-downtime-ms': { type: 'string' },
    'max-rounds': { type: 'string' },
    'on-non-convergence': { type: 'string' },
    'max-bandwidth-mbps': { type: 'string' },
    verify: { type: 'boolean' },
    wait: { type: 'boolean' },
    fault: { type: 'string' },
    hostname: { type: 'string' },
    hot: { type: 'boolean' },
    'copy-disks': { type: 'boolean' },
  });
  const vm = p.positionals[0];
  if (flag(p, 'help') || !vm) return void console.log(CLONE_HELP), vm || flag(p, 'help') ? 0 : 2;
  return withClient(p, async (c) => {
    let job = await c.clone({
      vm,
      targetHost: str(p, 'to'),
      cloneName: str(p, 'name'),
      maxDowntimeMs: int(p, 'max-downtime-ms', 0),
      maxRounds: int(p, 'max-rounds', 0),
      onNonConvergence: str(p, 'on-non-convergence'),
      maxBandwidthMbps: int(p, 'max-bandwidth-mbps', 0),
      verify: flag(p, 'verify'),
      fault: str(p, 'fault'),
      hostname: str(p, 'hostname'),
      hot: flag(p, 'hot'),
      copyDisks: flag(p, 'copy-disks'),
    });
    if (job.plan?.warning) console.error(`warning: ${job.plan.warning}`);
    if (flag(p, 'wait')) {
      const bar = new Progress();
      job = await c.waitJob(job.id, (j) =>
        bar.update(
          `${j.id} ${j.state} · round ${j.currentRound} · ${j.lastRoundPages} pages`,
          j.state === 'completed' ? 1 : j.plan?.predictedRounds ? Math.min(0.95, (j.currentRound + 1) / (j.plan.predictedRounds + 1)) : undefined,
        ),
      );
      bar.done();
    }
    if (flag(p, 'json')) return printJson(job), job.state === 'failed' ? 1 : 0;
    printJob(job);
    return job.state === 'failed' ? 1 : 0;
  });
}

export function printJob(j: Job): void {
  const plan = j.plan;
  console.log(`job ${j.id}: ${j.state}${j.error ? ` (${j.errorName}: ${j.error})` : ''}`);
  if (plan) console.log(`  ${plan.sourceVm} on ${plan.sourceHost} -> ${plan.targetVm || '(pending)'} on ${plan.targetHost}`);
  if (plan && j.kind !== 'hot-clone') {
    console.log(
      `  plan: threshold ${plan.thresholdPages} pages, bandwidth ${(plan.bandwidthBytesPerS / 1e6).toFixed(0)} MB/s, ` +
        `dirty rate ${Math.round(plan.dirtyPagesPerS)} pages/s, predicted ${plan.predictedRounds} rounds / ${plan.predictedDowntimeMs.toFixed(1)} ms`,
    );
  }
  const h = j.hot;
  if (h) {
    console.log(`  froze ${h.levels.map((l) => `${l.level} +${l.offsetMs.toFixed(3)} ms`).join(', ')}; the source never stopped (suspended: ${h.sourceSuspended})`);
    console.log(`  memory ${mib(h.memoryBytesRaw)} raw, ${mib(h.memoryBytesWire)} on the wire in ${h.memoryCopyMs.toFixed(0)} ms`);
    console.log(
      `  source: ${h.bufferedWrites} writes buffered while frozen (${h.frozenMs.toFixed(0)} ms), ${h.mergedWrites} merged back; ` +
        `stall ${h.sourceStallMs.toFixed(2)} ms (longest ${h.maxStallMs.toFixed(2)} ms)`,
    );
    console.log(
      h.diskLinked
        ? `  disks: linked to the frozen base on the shared datastore (${mib(h.sharedBaseBytes)} shared)`
        : `  disks: copied in full, ${h.diskBlocks} blocks, ${mib(h.diskBytesWire)} on the wire in ${h.diskCopyMs.toFixed(0)} ms`,
    );
    if (h.frozenHash) console.log(`  verify: frozen ${h.frozenHash.slice(0, 16)}… clone ${h.cloneHash.slice(0, 16)}… ${h.frozenHash === h.cloneHash ? 'EQUAL' : 'DIFFERENT'}`);
  }
  const s = j.stats;
  if (s) {
    console.log(`  rounds ${s.rounds} (${s.pagesPerRound.join(', ')} pages), stop: ${s.stopReason}`);
    console.log(`  sent ${mib(s.bytesRaw)} raw, ${mib(s.bytesWire)} on the wire (${((s.bytesWire / Math.max(1, s.bytesRaw)) * 100).toFixed(0)}%)`);
    console.log(`  downtime ${s.downtimeMs.toFixed(1)} ms, total ${s.totalMs.toFixed(0)} ms`);
    if (s.sourceHash) {
      console.log(`  verify: source ${s.sourceHash.slice(0, 16)}… clone ${s.cloneHash.slice(0, 16)}… ${s.sourceHash === s.cloneHash ? 'EQUAL' : 'DIFFERENT'} (${s.verifyMs.toFixed(0)} ms)`);
    }
  }
}

export async function jobsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { ...COMMON, limit: { type: 'string' } });
  if (flag(p, 'help')) return void console.log(`doppel jobs [--limit N]: list jobs, newest first.\n\n${API_COMMON_HELP}`), 0;
  const jobs = await withClient(p, (c) => c.jobs(int(p, 'limit', 50)));
  if (flag(p, 'json')) return printJson({ jobs }), 0;
  console.log(
    table(
      jobs.map((j) => ({
        id: j.id,
        kind: j.kind,
        state: j.state,
        vm: j.vm,
        route: j.plan ? `${j.plan.sourceHost} -> ${j.plan.targetHost}` : '',
        rounds: j.stats?.rounds ?? j.currentRound,
        'downtime ms': j.stats ? j.stats.downtimeMs.toFixed(1) : j.hot ? `0 (stall ${j.hot.sourceStallMs.toFixed(1)})` : '',
        created: j.createdAt,
        error: j.error,
      })),
    ),
  );
  return 0;
}

export const JOB_HELP = `doppel job ID: show one job.
doppel job cancel ID: cancel a running clone or backup; the source VM keeps running and the
half-made clone is removed.

${API_COMMON_HELP}`;

export async function jobCommand(argv: string[]): Promise<number> {
  const p = parse(argv, COMMON);
  const [first, second] = p.positionals;
  if (flag(p, 'help') || !first) return void console.log(JOB_HELP), first || flag(p, 'help') ? 0 : 2;
  if (first === 'cancel') {
    if (!second) throw new InvalidArgumentError('doppel job cancel needs a job id');
    const job = await withClient(p, (c) => c.cancelJob(second));
    if (flag(p, 'json')) return printJson(job), 0;
    printJob(job);
    return 0;
  }
  const id = first;
  const job = await withClient(p, (c) => c.job(id));
  if (flag(p, 'json')) return printJson(job), 0;
  printJob(job);
  return 0;
}

export async function eventsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { ...COMMON, follow: { type: 'boolean', short: 'f' }, start: { type: 'string' } });
  if (flag(p, 'help')) {
    return void console.log(`doppel events [--follow] [--start SEQ]: replay stored events, then follow new ones with --follow.\n\n${API_COMMON_HELP}`), 0;
  }
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  await withClient(p, (c) =>
    c.events({ all: true, follow: flag(p, 'follow'), startSeq: int(p, 'start', 0) }, (e) => {
      if (flag(p, 'json')) return process.stdout.write(e.json + '\n');
      const body = JSON.parse(e.json) as Record<string, unknown>;
      for (const k of ['type', 'time', 'host', 'jobId', 'vm', 'plan', 'stats']) delete body[k];
      console.log(`${String(e.seq).padStart(5)} ${e.time} ${e.type.padEnd(16)} ${e.host.padEnd(8)} ${e.jobId || '-'} ${e.vm || '-'} ${JSON.stringify(body)}`);
    }, ac.signal),
  );
  return 0;
}
