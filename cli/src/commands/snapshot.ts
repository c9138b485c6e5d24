/** Snapshot pairs (seed 002): snapshot, snapshots, snapshot show|revert|delete|check. */
import { flag, parse } from '../args.js';
import { printJson } from '../output.js';
import type { SnapshotList } from '../client.js';
import { API_COMMON_HELP, COMMON, withClient } from './api.js';

export const SNAPSHOT_HELP = `doppel snapshot VM [--storage-only]: take a snapshot pair of a VM.
doppel snapshot show ID | revert ID | delete ID | check

A pair (seed 002) is two snapshots with the same timestamp in their ids:
  storage snapshot  st-<timestamp>-xxxx: a copy-on-write snapshot of every disk, kept on the
                    VM's host (O(1): the disks' current layers are frozen, nothing is copied)
  metadata snapshot md-<timestamp>-xxxx: the VM's configuration, execution state (run state,
                    vCPU and device state) and the host's resource usage for it (CPU, memory,
                    dirty pages, disk and network I/O), kept in NATS JetStream KV
                    (bucket doppel-snapshot-meta), never on the host
The catalog (bucket doppel-snapshots) links each storage snapshot to its metadata snapshot.

  --storage-only   a new storage snapshot linked to the VM's newest metadata snapshot, which
                   is left unchanged (its KV revision does not move)

  show ID          a storage (st-) or metadata (md-) snapshot and what it is linked to
  revert ID        disks back to storage snapshot ID; configuration and execution state back to
                   its metadata snapshot (the VM is briefly suspended; it runs again if it ran then)
  delete ID        deletes storage snapshot ID; the other snapshots of the chain stay readable;
                   the metadata snapshot goes with its last storage snapshot
  check            storage snapshots without metadata, and metadata without storage
${API_COMMON_HELP}`;

/** The pairs as a tree: each metadata snapshot, and under it the storage snapshots linked to it. */
export function snapshotTree(l: SnapshotList): string {
  const lines: string[] = [];
  const linked = new Set<string>();
  for (const m of l.metadata) {
    const r = m.resources;
    lines.push(
      `${m.id}  ${m.timestamp}  ${m.vmName} on ${m.host}  ${m.runState}, cpu ${r?.cpuPercent.toFixed(0) ?? '?'}%, ` +
        `${r?.memoryMib ?? '?'} MiB, disk writes ${((r?.diskWriteBytesPerS ?? 0) / 1e6).toFixed(2)} MB/s  (metadata, KV rev ${m.revision})`,
    );
    const children = l.storage.filter((s) => s.metadataId === m.id);
    children.forEach((s, i) => {
      linked.add(s.id);
      const layers = s.disks.map((d) => `${d.name}:${d.layers}`).join(' ');
      lines.push(`${i === children.length - 1 ? '└─' : '├─'} ${s.id}  ${s.timestamp}  ${s.kind === 'pair' ? 'pair' : 'storage-only update'}  layers ${layers}`);
    });
  }
  for (const s of l.storage.filter((x) => !linked.has(x.id))) lines.push(`?  ${s.id}  ${s.timestamp}  metadata ${s.metadataId} is missing`);
  return lines.length ? lines.join('\n') : '(no snapshots)';
}

export async function snapshotCommand(argv: string[]): Promise<number> {
  const p = parse(argv, { ...COMMON, 'storage-only': { type: 'boolean' } });
  const [first, second] = p.positionals;
  if (flag(p, 'help') || !first) return void console.log(SNAPSHOT_HELP), flag(p, 'help') ? 0 : 2;
  const json = flag(p, 'json');
  const needId = (what: string) => {
    if (!second) {
      console.error(`doppel snapshot ${what} needs a snapshot id (see --help)`);
      return false;
    }
    return true;
  };
  return withClient(p, async (c) => {
    switch (first) {
      case 'show': {
        if (!needId('show')) return 2;
        const l = await c.snapshot(second!);
        if (json) return printJson(l), 0;
        console.log(snapshotTree(l));
        return 0;
      }
      case 'revert': {
        if (!needId('revert')) return 2;
        const r = await c.revertSnapshot(second!);
        if (json) return printJson(r), r.hashesMatch ? 0 : 1;
        console.log(
          `reverted ${r.storage?.vmName} to ${r.storage?.id} (metadata ${r.metadata?.id}) in ${r.ms.toFixed(0)} ms; ` +
            `disks ${r.hashesMatch ? 'equal' : 'NOT equal'} to the snapshot by hash; now ${r.runState}`,
        );
        return r.hashesMatch ? 0 : 1;
      }
      case 'delete': {
        if (!needId('delete')) return 2;
        const r = await c.deleteSnapshot(second!);
        if (json) return printJson(r), 0;
        console.log(`deleted ${second}${r.metadataDeleted ? ' and its metadata snapshot (its last storage snapshot)' : ''}`);
        return 0;
      }
      case 'check': {
        const r = await c.checkSnapshots();
        if (json) return printJson(r), r.storageWithoutMetadata.length + r.metadataWithoutStorage.length > 0 ? 1 : 0;
        console.log(`hosts checked: ${r.hostsChecked.join(', ') || '(none)'}${r.hostsUnreachable.length ? `; unreachable: ${r.hostsUnreachable.join(', ')}` : ''}`);
        console.log(`storage snapshots without metadata: ${r.storageWithoutMetadata.join(', ') || 'none'}`);
        console.log(`metadata snapshots without storage: ${r.metadataWithoutStorage.join(', ') || 'none'}`);
        return r.storageWithoutMetadata.length + r.metadataWithoutStorage.length > 0 ? 1 : 0;
      }
      default: {
        const vm = first === 'create' && second ? second : first;
        const pair = await c.createSnapshot(vm, flag(p, 'storage-only'));
        if (json) return printJson(pair), 0;
        const s = pair.storage!;
        const m = pair.metadata!;
        console.log(
          `${s.kind === 'pair' ? 'pair' : 'storage-only snapshot'} of ${s.vmName} on ${s.host}: storage ${s.id}, metadata ${m.id} ` +
            `(${m.store}, rev ${m.revision}); frozen in ${s.createMs.toFixed(1)} ms, guest paused ${pair.pauseMs.toFixed(1)} ms`,
        );
        return 0;
      }
    }
  });
}

export const SNAPSHOTS_HELP = `doppel snapshots [VM]: a VM's snapshot pairs (or every VM's) as a tree: each metadata
snapshot, and under it the storage snapshots linked to it, oldest first.
${API_COMMON_HELP}`;

export async function snapshotsCommand(argv: string[]): Promise<number> {
  const p = parse(argv, COMMON);
  if (flag(p, 'help')) return void console.log(SNAPSHOTS_HELP), 0;
  return withClient(p, async (c) => {
    const l = await c.snapshots(p.positionals[0] ?? '');
    if (flag(p, 'json')) return printJson(l), 0;
    console.log(snapshotTree(l));
    return 0;
  });
}

