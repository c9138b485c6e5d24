/**
 * A datastore's id, shared by the drivers: made once, by link(2), in `<datastore>/datastore.json`. link fails if
 * another host made the file first, so every host that mounts the same directory reads the winner's id and knows
 * it shares the datastore with the others that report it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FailedPreconditionError, newId } from '../../../shared/src/mod.js';

export const DATASTORE_ID_FILE = 'datastore.json';

/** The datastore's id (`ds-...`), created by the first host that asks. */
export function ensureDatastoreId(dsPath: string): string {
  mkdirSync(dsPath, { recursive: true });
  const file = join(dsPath, DATASTORE_ID_FILE);
  if (!existsSync(file)) {
    const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    writeFileSync(tmp, JSON.stringify({ id: newId('ds'), createdAt: new Date().toISOString() }));
    try {
      linkSync(tmp, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    } finally {
      unlinkSync(tmp);
    }
  }
  let id: unknown;
  try {
    id = (JSON.parse(readFileSync(file, 'utf8')) as { id?: unknown }).id;
  } catch (err) {
    throw new FailedPreconditionError(`${file} is not readable JSON: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (typeof id !== 'string' || id === '') throw new FailedPreconditionError(`${file} has no id`);
  return id;
}
