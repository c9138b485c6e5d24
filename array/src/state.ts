/**
 * The array's metadata, one JSON file (state.json): volumes with their layer chains, snapshots with the
 * layer each one froze. Rewritten whole on every change of metadata (volume created or deleted, snapshot
 * taken or deleted) through a temp file, fsync and rename, so a restart finds the old or the new state,
 * never half of one. Data writes never touch it: they go to the layers' data and map files.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { DataCorruptionError, FailedPreconditionError } from '../../shared/src/mod.js';

export const STATE_FORMAT = 1;

export interface VolumeState {
  name: string;
  sizeBytes: number;
  createdAt: string;
  /** Layer ids, oldest first; the last one takes the writes. */
  layers: number[];
}

export interface SnapshotState {
  id: string;
  /** Order of creation: a base snapshot has a smaller seq. */
  seq: number;
  createdAt: string;
  label?: string;
  /** Per volume, the layer this snapshot froze (its view is the volume's chain up to that layer). */
  volumes: { name: string; sizeBytes: number; layer: number }[];
}

export interface ArrayState {
  format: number;
  name: string;
  blockSize: number;
  nextLayer: number;
  nextSeq: number;
  volumes: VolumeState[];
  snapshots: SnapshotState[];
}

function errnoCode(err: unknown): unknown {
  return (err as { code?: unknown } | null)?.code;
}

export async function loadState(dir: string): Promise<ArrayState | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'state.json'), 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  let s: Partial<ArrayState>;
  try {
    s = JSON.parse(text) as Partial<ArrayState>;
  } catch (err) {
    throw new DataCorruptionError(`storage array at ${dir}: state.json is not JSON`, { cause: err });
  }
  if (s.format !== STATE_FORMAT) throw new FailedPreconditionError(`storage array at ${dir} has format ${String(s.format)}; this doppel reads format ${STATE_FORMAT}`);
  if (
    typeof s.name !== 'string' ||
    typeof s.blockSize !== 'number' ||
    typeof s.nextLayer !== 'number' ||
    typeof s.nextSeq !== 'number' ||
    !Array.isArray(s.volumes) ||
    !Array.isArray(s.snapshots)
  ) {
    throw new DataCorruptionError(`storage array at ${dir}: state.json lacks required fields`);
  }
  return s as ArrayState;
}

/** Writes state.json all or nothing: temp file, fsync, rename, fsync of the directory. */
export async function saveState(dir: string, state: ArrayState): Promise<void> {
  const tmp = path.join(dir, 'tmp', `state.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(JSON.stringify(state) + '\n');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path.join(dir, 'state.json'));
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync().catch((err: unknown) => {
      const code = errnoCode(err);
      if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'ENOTSUP') throw err;
    });
  } finally {
    await d.close();
  }
}
