/**
 * Creating or opening a repository directory: repo.json (the format and the
 * chunk size, fixed at creation), the chunks/, backups/ and tmp/ directories,
 * and the removal of temp files a crash left behind.
 */
import { mkdir, readFile, readdir, rename, stat } from 'node:fs/promises';
import path from 'node:path';
import {
  DataCorruptionError,
  DEFAULT_CHUNK_SIZE,
  FailedPreconditionError,
  InvalidArgumentError,
  REPO_FORMAT,
  isValidChunkSize,
  type Logger,
} from '../../shared/src/mod.js';
import { diskFullError, fsyncDir, isDiskFull, isNotFound, removeQuietly, tmpPath, writeDurable } from './atomic.js';

/** Temp files older than this at open are leftovers of a crash (a live write takes milliseconds). */
const STALE_TMP_MS = 10 * 60_000;

async function readConfig(dir: string, wanted: number | undefined): Promise<number | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'repo.json'), 'utf8');
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  let config: { format?: unknown; chunkSize?: unknown };
  try {
    config = JSON.parse(text) as typeof config;
  } catch (err) {
    throw new DataCorruptionError(`repository at ${dir}: repo.json is not JSON`, { cause: err });
  }
  if (config.format !== REPO_FORMAT) {
    throw new FailedPreconditionError(`repository at ${dir} has format ${String(config.format)}; this doppel reads format ${REPO_FORMAT}`);
  }
  if (typeof config.chunkSize !== 'number' || !isValidChunkSize(config.chunkSize)) {
    throw new DataCorruptionError(`repository at ${dir}: repo.json has an invalid chunk size ${String(config.chunkSize)}`);
  }
  if (wanted !== undefined && wanted !== config.chunkSize) {
    throw new FailedPreconditionError(`repository at ${dir} uses ${config.chunkSize}-byte chunks, not ${wanted}`);
  }
  return config.chunkSize;
}

async function removeStaleTemp(dir: string, log: Logger): Promise<void> {
  const tmp = path.join(dir, 'tmp');
  const now = Date.now();
  for (const name of await readdir(tmp)) {
    const p = path.join(tmp, name);
    const st = await stat(p).catch(() => undefined);
    if (st && now - st.mtimeMs > STALE_TMP_MS) {
      await removeQuietly(p);
      log.info({ file: name }, 'removed a stale temp file');
    }
  }
}

/** Makes `dir` a repository if it is not one yet; returns its absolute path and chunk size. */
export async function prepareRepositoryDir(dirIn: string, wanted: number | undefined, log: Logger): Promise<{ dir: string; chunkSize: number }> {
  const dir = path.resolve(dirIn);
  if (wanted !== undefined && !isValidChunkSize(wanted)) {
    throw new InvalidArgumentError(`repository chunk size must be a power of two from 64 KiB to 4 MiB (got ${wanted})`);
  }
  try {
    await mkdir(dir, { recursive: true });
    for (const sub of ['chunks', 'backups', 'tmp']) await mkdir(path.join(dir, sub), { recursive: true });
    let chunkSize = await readConfig(dir, wanted);
    if (chunkSize === undefined) {
      chunkSize = wanted ?? DEFAULT_CHUNK_SIZE;
      const tmp = tmpPath(path.join(dir, 'tmp'), 'repo.json');
      try {
        await writeDurable(tmp, [Buffer.from(JSON.stringify({ format: REPO_FORMAT, chunkSize }) + '\n')]);
        await rename(tmp, path.join(dir, 'repo.json'));
        await fsyncDir(dir);
      } catch (err) {
        await removeQuietly(tmp);
        throw err;
      }
      log.info({ dir, chunkSize }, 'repository created');
    }
    await removeStaleTemp(dir, log);
    return { dir, chunkSize };
  } catch (err) {
    if (isDiskFull(err)) throw diskFullError(dir, 'repo.json', err);
    throw err;
  }
}
