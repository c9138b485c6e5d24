#!/usr/bin/env node
/** The `doppel` command line. */
import { toDoppelError } from '../../shared/src/mod.js';
import { agentCommand, arrayCommand, coordinatorCommand, repoCommand, upCommand } from './commands/daemons.js';
import { backupCommand, backupsCommand, restoreCommand, verifyCommand } from './commands/backup.js';
import { cloneCommand, eventsCommand, hostsCommand, jobCommand, jobsCommand, vmCommand, vmsCommand } from './commands/api.js';
import { demoCommand } from './demo/demo.js';
import { natsAuthCommand } from './commands/nats-auth.js';
import { snapshotCommand, snapshotsCommand } from './commands/snapshot.js';
import { certsCommand } from './commands/certs.js';
import { clusterCommand } from './commands/cluster.js';

const COMMANDS: Record<string, { run: (argv: string[]) => Promise<number>; about: string }> = {
  up: { run: upCommand, about: 'run a local fleet (NATS, coordinator, two agents) in the foreground' },
  demo: { run: demoCommand, about: 'run a scenario end to end on a private local fleet' },
  agent: { run: agentCommand, about: 'run the agent of one hypervisor host' },
  coordinator: { run: coordinatorCommand, about: 'run the coordinator' },
  hosts: { run: hostsCommand, about: 'list hosts' },
  vms: { run: vmsCommand, about: 'list VMs' },
  vm: { run: vmCommand, about: 'vm create NAME | vm run VM | vm destroy VM | vm storage VM | vm adopt NAME' },
  clone: { run: cloneCommand, about: 'live-clone a running VM to another host (--hot: the source never stops)' },
  jobs: { run: jobsCommand, about: 'list jobs' },
  job: { run: jobCommand, about: 'job ID: show one job | job cancel ID: cancel a running clone or backup' },
  events: { run: eventsCommand, about: 'replay and follow events' },
  backup: { run: backupCommand, about: 'back a VM up through a live clone (or --direct)' },
  backups: { run: backupsCommand, about: 'list the backup catalog' },
  restore: { run: restoreCommand, about: 'create a VM from a backup, on a host or planned for another cluster' },
  cluster: { run: clusterCommand, about: 'cluster add|show|list|remove: networks, datastores, CPU models of a cluster' },
  snapshot: { run: snapshotCommand, about: 'snapshot VM [--storage-only] | snapshot show|revert|delete ID | snapshot check: snapshot pairs' },
  snapshots: { run: snapshotsCommand, about: 'a VM\'s snapshot pairs as a tree' },
  verify: { run: verifyCommand, about: 'check every chunk of a backup' },
  'nats-auth': { run: natsAuthCommand, about: 'NATS users and subject permissions for a fleet (auth.conf + credentials)' },
  repo: { run: repoCommand, about: 'repo serve --dir DIR: run a standalone backup repository' },
  array: { run: arrayCommand, about: 'array serve --dir DIR: run a simulated storage array (volumes and snapshots over HTTP)' },
  certs: { run: certsCommand, about: 'certs init | issue NAME --role ROLE | show NAME | list: the fleet PKI (mutual TLS)' },
};

function usage(): string {
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  return `doppel: live clone-backup of running VMs across a fleet of hypervisor hosts

usage: doppel COMMAND [options]      (doppel COMMAND --help for its options)

${Object.entries(COMMANDS)
  .map(([k, v]) => `  ${k.padEnd(w)}  ${v.about}`)
  .join('\n')}

Environment: DOPPEL_COORDINATOR (gRPC address for client commands), DOPPEL_NATS_URL,
DOPPEL_LOG_FORMAT (json|pretty), DOPPEL_LOG_LEVEL.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const cmd = COMMANDS[name];
  if (!cmd) {
    console.error(`doppel: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const e = toDoppelError(err);
    console.error(`doppel: ${e.name}: ${e.message}`);
    process.exitCode = e.code === 'INVALID_ARGUMENT' ? 2 : 1;
  },
);
