/** Plain records to the API's message shapes (the same for gRPC and JSON). */
import type { HostRecord, JobRecord, VmInfo } from '../../../shared/src/mod.js';
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
  };
}

export function vmMessage(v: VmInfo): VM {
  return { ...v };
}

export function jobMessage(j: JobRecord): Job {
  return { ...j, stats: j.stats ?? undefined };
}

export function eventMessage(e: StoredEvent): Event {
  return { seq: e.seq, type: e.event.type, time: e.event.time, jobId: e.event.jobId, host: e.event.host, vm: e.event.vm, json: JSON.stringify(e.event) };
}
