/**
 * The simulated storage array's REST API as both ends see it: limits, the JSON shapes of answers, and the
 * checks of names, ids, offsets and lengths. Routes (all under the array's URL, JSON unless marked raw):
 *
 *   GET    /v1/array                                   ArrayInfo
 *   POST   /v1/volumes            {name, sizeMib}      201 ArrayVolume
 *   GET    /v1/volumes                                 {volumes: ArrayVolume[]}
 *   GET    /v1/volumes/{name}                          ArrayVolume
 *   DELETE /v1/volumes/{name}                          {deleted: name}; 409 while snapshots cover it
 *   PUT    /v1/volumes/{name}/data?offset=N            raw body → {volume, offset, length}
 *   GET    /v1/volumes/{name}/data?offset=N&length=M   raw bytes (unwritten = zeros)
 *   POST   /v1/writes             {writes: [{volume, offset, data: base64}]}  → {writes, bytes}; one atomic step
 *   POST   /v1/snapshots          {volumes: [name], label?}  201 ArraySnapshot (atomic over the volumes)
 *   GET    /v1/snapshots                               {snapshots: ArraySnapshot[]} oldest first
 *   GET    /v1/snapshots/{id}                          ArraySnapshot
 *   DELETE /v1/snapshots/{id}                          {deleted: id}
 *   GET    /v1/snapshots/{id}/volumes/{vol}/data?offset=N&length=M   raw bytes as at the snapshot
 *   GET    /v1/snapshots/{id}/volumes/{vol}/allocated  ArrayBitmapJson: blocks holding data
 *   GET    /v1/snapshots/{id}/volumes/{vol}/diff?base=ID  ArrayBitmapJson: blocks written after base up to id
 *   GET    /v1/admin/faults, POST /v1/admin/faults {refuseSnapshots?, unavailable?}  ArrayFaults
 *
 * Errors are `{error: {name, code, message}}` (see shared/src/errors.ts).
 */
import { InvalidArgumentError } from '../errors.js';

/** Allocation, snapshot and bitmap granularity. */
export const ARRAY_BLOCK_SIZE = 64 * 1024;
/** Offsets and lengths of reads and writes are multiples of this. */
export const ARRAY_IO_ALIGN = 4096;
/** The largest read or write (a PUT body, a GET length, the data of one atomic batch). */
export const ARRAY_MAX_IO_BYTES = 8 * 1024 * 1024;
export const ARRAY_MAX_VOLUME_MIB = 1024 * 1024;
/** Volumes one snapshot or one batch may name. */
export const ARRAY_MAX_GROUP = 64;
export const ARRAY_MAX_LABEL = 256;

export interface ArrayInfo {
  name: string;
  blockSize: number;
  ioAlign: number;
  maxIoBytes: number;
  volumes: number;
  snapshots: number;
}

export interface ArrayVolume {
  name: string;
  sizeBytes: number;
  blockSize: number;
  createdAt: string;
  /** Ids of the snapshots that cover it, oldest first. */
  snapshots: string[];
}

export interface ArraySnapshotVolume {
  name: string;
  sizeBytes: number;
}

export interface ArraySnapshot {
  id: string;
  /** ISO 8601 with milliseconds. */
  createdAt: string;
  label?: string;
  volumes: ArraySnapshotVolume[];
}

/** A block bitmap on the wire: see shared/src/array/bitmap.ts for the bit order. */
export interface ArrayBitmapJson {
  blockSize: number;
  /** Blocks in the volume (the bitmap has ceil(blocks / 8) bytes). */
  blocks: number;
  bitmap: string;
}

export interface ArrayFaults {
  /** POST /v1/snapshots answers 409 FailedPreconditionError. */
  refuseSnapshots: boolean;
  /** Every route but /v1/admin/* answers 503 UnavailableError. */
  unavailable: boolean;
}

export interface ArrayWriteResult {
  volume: string;
  offset: number;
  length: number;
}

const VOLUME_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const SNAPSHOT_RE = /^snap-[0-9a-z]{8,40}$/;

export function isArrayVolumeName(v: unknown): v is string {
  return typeof v === 'string' && VOLUME_RE.test(v);
}

export function requireVolumeName(field: string, v: unknown): string {
  if (!isArrayVolumeName(v)) {
    throw new InvalidArgumentError(`${field} must be 1-63 characters of letters, digits, '-' or '_', starting with a letter or digit (got ${JSON.stringify(v)})`);
  }
  return v;
}

export function requireSnapshotId(field: string, v: unknown): string {
  if (typeof v !== 'string' || !SNAPSHOT_RE.test(v)) {
    throw new InvalidArgumentError(`${field} must be a snapshot id like 'snap-lx3k9a2b1c2d3e4f' (got ${JSON.stringify(v)})`);
  }
  return v;
}

/** An offset or length: a whole number, a multiple of ARRAY_IO_ALIGN, within [min, max]. */
export function requireAligned(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max || v % ARRAY_IO_ALIGN !== 0) {
    throw new InvalidArgumentError(`${field} must be a multiple of ${ARRAY_IO_ALIGN} from ${min} to ${max} (got ${JSON.stringify(v)})`);
  }
  return v;
}

export function requireLabel(v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length > ARRAY_MAX_LABEL || /[\u0000-\u001f\u007f]/.test(v)) {
    throw new InvalidArgumentError(`label must be a string of at most ${ARRAY_MAX_LABEL} characters without control characters`);
  }
  return v;
}
