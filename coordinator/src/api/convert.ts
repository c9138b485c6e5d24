/** Plain records to the API's message shapes (the same for gRPC and JSON). */
import type { BackupRecord, HostRecord, JobRecord, VmInfo } from '../../../shared/src/mod.js';
import type { Backup } from '../../../shared/src/gen/doppel/v1/Backup.js';
import type { Host } from '../../../shared/src/gen/doppel/v1/Host.js';
import type { VM } from '../../../shared/src/gen/doppel/v1/VM.js';
import type { Job } from '../../../shared/src/gen/doppel/v1/Job.js';
import type { Event } from '../../../shared/src/gen/doppel/v1/Event.js';
import type { StoredEvent } from '../service.js';

export function hostMessage(h: HostRecord): Host {
  return {
    name: h.name,
    dataAddr: h.dataAddr,
    driver: h.driver,
    state: h.state,
    capacity: h.capacity,
    usedMemoryMib: h.usedMemoryMib,
    vmCount: h.vms.length,
    lastSeen: h.sentAt,
    agentRssBytes: h.rssBytes,
    agentPeakRssBytes: h.peakRssBytes,
    datastore: h.datastore,
  };
}

export function vmMessage(v: VmInfo): VM {
  return { ...v };
}

export function backupMessage(b: BackupRecord): Backup {
  return { ...b, stats: { ...b.stats, clone: b.stats.clone ?? undefined } };
}

export function jobMessage(j: JobRecord): Job {
  return {
    ...j,
    stats: j.stats ?? undefined,
    backup: j.backup ? { ...j.backup, result: j.backup.result ? backupMessage(j.backup.result) : undefined } : undefined,
    restore: j.restore ?? undefined,
  };
}

export function eventMessage(e: StoredEvent): Event {
  return { seq: e.seq, type: e.event.type, time: e.event.time, jobId: e.event.jobId, host: e.event.host, vm: e.event.vm, json: JSON.stringify(e.event) };
}
