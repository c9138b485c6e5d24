/** Backup commands: backup, backups, restore, verify. */
import type { CoordinatorClient, Backup, Job } from '../client.js';
import type { RestorePlan__Output as RestorePlan } from '../../../shared/src/gen/doppel/v1/RestorePlan.js';
import { flag, int, list, parse, str } from '../args.js';
import { mib, printJson, Progress, table } from '../output.js';
import { API_COMMON_HELP, COMMON, withClient } from './api.js';

/** Waits for a job with a progress bar on stderr (silent unless a terminal). */
export async function waitWithProgress(c: CoordinatorClient, job: Job, label: string): Promise<Job> {
  const bar = new Progress();
  const done = await c.waitJob(job.id, (j) => {
    const round = j.phase === 'pre-copy' ? ` round ${j.currentRound} (${j.lastRoundPages} pages)` : '';
    bar.update(`${label} ${j.id}: ${j.state} · ${j.phase || 'starting'}${round}`, j.state === 'completed' ? 1 : j.progress || undefined);
  });
  bar.done();
  return done;
}

export const BACKUP_HELP = `doppel backup VM [options]: back a running VM up.

By default the backup is taken through a live clone (seed 000): the VM is cloned
to a second host by iterative pre-copy (the VM pauses only for the switchover),
the clone gets the disks as they were at the switchover, runs with its network
isolated, and the backup is made from a snapshot of the clone's disks; then the
clone is removed. The repository stores each 4 MiB chunk once (SHA-256, LZ4).

A VM with bypass volumes (written by the guest straight to the storage array) is
backed up on its own host, time-consistently (seed 001): a first snapshot at t1 of
its disks and its bypass volumes (the guest paused for the fence), the bypass
volumes backed up from t1, a second snapshot of its disks at t2, the disks backed
up from t2 and reverted to t1 (only the blocks written in between are read from
the t1 snapshot); one backup holds both.

  --direct                 snapshot the VM itself instead (a brief pause for the freeze; the VM carries the backup's reads)
  --incremental            read and send only what changed since the VM's last backup; full when there is no valid base (the output says why)
  --keep-clone             keep the clone (running, network isolated) after the backup
  --clone-host HOST        where the clone runs (default: the host with the most free memory)
  --clone-settle-ms N      let the clone run N ms before its disk is snapshotted (default 0)
  --max-downtime-ms N      the clone's switchover limit (default 300)
  --on-non-convergence P   refuse (default) | warn
  --max-bandwidth-mbps N   cap the pre-copy stream (MB/s)
  --wait                   wait for the backup and show its progress
  --skip-revert            tests only, bypass mode: leave the disks at t2 (the agent must allow fault injection)
${API_COMMON_HELP}`;

export async function backupCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...COMMON,
    direct: { type: 'boolean' },
    incremental: { type: 'boolean' },
    'keep-clone': { type: 'boolean' },
    'clone-host': { type: 'string' },
    'clone-settle-ms': { type: 'string' },
    'max-downtime-ms': { type: 'string' },
    'on-non-convergence': { type: 'string' },
    'max-bandwidth-mbps': { type: 'string' },
    wait: { type: 'boolean' },
    'skip-revert': { type: 'boolean' },
  });
  const vm = p.positionals[0];
  if (flag(p, 'help') || !vm) return void console.log(BACKUP_HELP), vm || flag(p, 'help') ? 0 : 2;
  return withClient(p, async (c) => {
    let job = await c.backup({
      vm,
      direct: flag(p, 'direct'),
      incremental: flag(p, 'incremental'),
      keepClone: flag(p, 'keep-clone'),
      cloneHost: str(p, 'clone-host'),
      maxDowntimeMs: int(p, 'max-downtime-ms', 0),
      onNonConvergence: str(p, 'on-non-convergence'),
      maxBandwidthMbps: int(p, 'max-bandwidth-mbps', 0),
      cloneSettleMs: int(p, 'clone-settle-ms', 0),
      skipRevert: flag(p, 'skip-revert'),
    });
    if (job.plan?.warning) console.error(`warning: ${job.plan.warning}`);
    if (flag(p, 'wait')) job = await waitWithProgress(c, job, 'backup');
    if (flag(p, 'json')) return printJson(job), job.state === 'failed' ? 1 : 0;
    printBackupJob(job);
    return job.state === 'failed' ? 1 : 0;
  });
}

export function printBackupJob(j: Job): void {
  console.log(`job ${j.id}: backup ${j.state}${j.error ? ` (${j.errorName}: ${j.error})` : ''}`);
  const b = j.backup;
  if (!b) return;
  console.log(`  backup ${b.backupId} (${b.mode}${b.incremental ? ', incremental asked' : ''}) into ${b.repository}`);
  if (b.result) printBackup(b.result);
  else if (j.state !== 'failed') console.log(`  running: ${j.phase || 'starting'} (doppel job ${j.id} to follow it)`);
}

export function printBackup(b: Backup): void {
  const s = b.stats;
  console.log(b.kind === 'incremental' ? `  incremental on ${b.baseId}` : `  full: ${b.fullReason || 'no base'}`);
  if (!s) return;
  const pause = b.mode === 'clone' ? ' (the live clone\'s switchover)' : b.mode === 'bypass' ? ' (the t1 fence)' : ' (the snapshot freeze)';
  console.log(`  source paused ${s.sourcePausedMs.toFixed(1)} ms${pause}`);
  const bp = b.bypass;
  if (bp) {
    console.log(`  time-consistent at t1 ${bp.t1} (array snapshot ${bp.arraySnapshot}); disks snapshotted again at t2 ${bp.t2}`);
    console.log(
      bp.reverted
        ? `  ${bp.blocksReverted} disk blocks written between t1 and t2 reverted to t1 in ${bp.revertMs.toFixed(0)} ms`
        : '  NOT reverted (test flag): the disks are at t2, the bypass volumes at t1',
    );
  }
  if (b.mode === 'clone') {
    console.log(`  clone disk: ${s.linkedClone ? 'overlay on the shared datastore' : `${mib(s.diskCopyBytes)} copied in ${s.diskCopyMs.toFixed(0)} ms`}`);
  }
  console.log(
    `  read ${mib(s.bytesRead)}, stored ${mib(s.bytesStored)}; chunks: ${s.chunksTotal} total, ${s.chunksNew} new, ${s.chunksReused} reused, ${s.chunksZero} zero`,
  );
  for (const d of b.disks) console.log(`  disk ${d.name}: ${mib(d.sizeBytes)}, content hash ${d.contentHash.slice(0, 16)}…`);
  console.log(`  took ${(s.totalMs / 1000).toFixed(1)} s (upload ${(s.uploadMs / 1000).toFixed(1)} s)`);
}

export async function backupsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { ...COMMON, limit: { type: 'string' } });
  if (flag(p, 'help')) return void console.log(`doppel backups [VM] [--limit N]: list the backup catalog, newest first.\n\n${API_COMMON_HELP}`), 0;
  const backups = await withClient(p, (c) => c.backups(p.positionals[0] ?? '', int(p, 'limit', 0)));
  if (flag(p, 'json')) return printJson({ backups }), 0;
  console.log(
    table(
      backups.map((b) => ({
        id: b.id,
        vm: b.vmName,
        created: b.createdAt,
        mode: b.mode,
        kind: b.kind,
        base: b.baseId,
        disks: b.disks.length,
        size: mib(b.disks.reduce((n, d) => n + d.sizeBytes, 0)),
        stored: mib(b.stats?.bytesStored ?? 0),
        'paused ms': (b.stats?.sourcePausedMs ?? 0).toFixed(1),
      })),
    ),
  );
  return 0;
}

export const RESTORE_HELP = `doppel restore BACKUP (--to HOST | --to-cluster NAME) [options]: create a VM from a backup.

The VM gets the backup's configuration and disks. A backup carries a save set
(seed 003): the VM's configuration and its cluster's (networks, datastores, CPU
models, memory limit). The restore compares it with the destination cluster and
plans the changes, by these rules (--map overrides any of them):

  network    the same name and VLAN; else a network with the same VLAN
  datastore  the same name with room; else the one with the most free space;
             the disks' paths follow the datastore
  CPU model  the same; else the same vendor's oldest newer model; else its
             newest older one (the guest boots with fewer CPU features)
  memory     never changed: a VM larger than every host, or than the cluster's
             limit, cannot be restored there

A restore the destination cannot satisfy fails before any data moves, with every
reason. Otherwise the chosen host copies the save set to its datastore, imports
the VM with the changed configuration, and writes the disks there from the
repository. Every chunk is checked against its SHA-256 and the restored disks are
read back and hashed: a restore that would give wrong bytes fails and removes the
VM. The VM is a new machine: a new UUID, MAC address and machine id, and its name
as hostname (the backup keeps the source's identity).

  --to HOST          the host to restore to (its cluster's rules apply, on its datastore)
  --to-cluster NAME  the cluster to restore to: the plan picks the datastore and a host
  --map KIND:A=B     override a rule (repeatable): net:A=B puts the NICs on network A onto B,
                     store:X=Y puts the disks from datastore X onto Y, cpu:X=Y uses model Y
  --dry-run          print the plan (changes and problems) and change nothing; exit 1 if impossible
  --as NAME          the new VM's name (default: the backed-up VM's name, -restored-XXXX)
  --start            run the VM once restored and checked (default: left suspended)
  --no-wait          return once the restore started
${API_COMMON_HELP}`;

/** The plan as people read it: one line per change, then what cannot be satisfied. */
export function printPlan(plan: RestorePlan): void {
  console.log(`restore plan: backup ${plan.backupId} (vm ${plan.vmName}) from cluster '${plan.sourceCluster}' to '${plan.destinationCluster}'`);
  if (plan.changes.length === 0) console.log('  no changes: the destination matches the save set');
  else console.log(table(plan.changes.map((c) => ({ change: c.kind, item: c.item, from: c.from, to: c.to, rule: c.rule }))));
  if (plan.datastore) console.log(`  datastore ${plan.datastore} (${plan.datastorePath}), hosts: ${plan.hosts.join(', ') || 'none'}`);
  console.log(`  cpu ${plan.cpuModel}, ${plan.memoryMib} MiB memory, ${plan.diskMib} MiB of disks${plan.networks.length ? `, networks ${plan.networks.join(', ')}` : ''}`);
  if (plan.problems.length > 0) {
    console.log(`  cannot be restored there (${plan.problems.length} problem(s)):`);
    for (const p of plan.problems) console.log(`    - ${p}`);
  }
}

export async function restoreCommand(argv: string[]): Promise<number> {
  const p = parse(argv, {
    ...COMMON,
    to: { type: 'string' },
    'to-cluster': { type: 'string' },
    map: { type: 'string', multiple: true },
    'dry-run': { type: 'boolean' },
    as: { type: 'string' },
    start: { type: 'boolean' },
    'no-wait': { type: 'boolean' },
  });
  const id = p.positionals[0];
  if (flag(p, 'help') || !id || (!str(p, 'to') && !str(p, 'to-cluster'))) return void console.log(RESTORE_HELP), flag(p, 'help') ? 0 : 2;
  const req = { backup: id, toHost: str(p, 'to'), toCluster: str(p, 'to-cluster'), maps: list(p, 'map'), asName: str(p, 'as'), start: flag(p, 'start') };
  return withClient(p, async (c) => {
    if (flag(p, 'dry-run')) {
      const plan = await c.planRestore(req);
      if (flag(p, 'json')) printJson(plan);
      else printPlan(plan);
      return plan.problems.length > 0 ? 1 : 0;
    }
    let job = await c.restore(req);
    if (!flag(p, 'no-wait')) job = await waitWithProgress(c, job, 'restore');
    if (flag(p, 'json')) return printJson(job), job.state === 'failed' ? 1 : 0;
    const r = job.restore;
    console.log(`job ${job.id}: restore ${job.state}${job.error ? ` (${job.errorName}: ${job.error})` : ''}`);
    if (r) {
      console.log(`  backup ${r.backupId} -> vm ${r.vmName} (${r.vmId || 'pending'}) on ${r.targetHost}, cluster ${r.cluster || '-'}`);
      if (r.plan) printPlan(r.plan);
      if (job.state === 'completed') {
        console.log(`  datastore ${r.datastorePath}, cpu ${r.cpuModel || '-'}, network ${r.network || '-'}`);
        console.log(`  wrote ${mib(r.bytesWritten)} in ${(r.ms / 1000).toFixed(1)} s; disk hashes ${r.hashesMatch ? 'MATCH the backup' : 'DIFFER'}`);
        if (r.hasTokens) {
          const same = r.imageToken === r.bypassToken;
          console.log(`  consistency tokens: disk ${r.imageToken}, bypass volume ${r.bypassToken} (${same ? 'equal: time-consistent' : 'DIFFERENT'})`);
        }
      }
    }
    return job.state === 'failed' ? 1 : 0;
  });
}

export async function verifyCommand(argv: string[]): Promise<number> {
  const p = parse(argv, COMMON);
  const id = p.positionals[0];
  if (flag(p, 'help') || !id) {
    return void console.log(`doppel verify BACKUP: re-hash every chunk of a backup in the repository and name any bad one.\n\n${API_COMMON_HELP}`), id ? 0 : 2;
  }
  return withClient(p, async (c) => {
    const bar = new Progress();
    const r = await c.verify(id, (x) => bar.update(`verify ${id}: ${x.chunksChecked}/${x.chunksTotal} chunks`, x.chunksTotal ? x.chunksChecked / x.chunksTotal : undefined));
    bar.done();
    if (flag(p, 'json')) return printJson({ backup: id, ...r, badChunks: r.bad.length }), r.bad.length ? 1 : 0;
    if (r.bad.length === 0) {
      console.log(`backup ${id}: ${r.chunksChecked} chunks checked, all good`);
      return 0;
    }
    console.log(`backup ${id}: ${r.bad.length} bad chunk(s) of ${r.chunksChecked}:`);
    for (const b of r.bad) console.log(`  ${b.digest}  disk ${b.disk} offset ${b.offset}: ${b.reason}`);
    return 1;
  });
}
