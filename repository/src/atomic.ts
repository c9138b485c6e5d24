/**
 * Durable, all-or-nothing file writes for the repository: a file is written
 * under tmp/, fsynced, and only then renamed into place, so a reader (or a
 * restart after a crash) sees either nothing or the complete file. A full disk
 * becomes one clear error naming the repository, with the temp file removed.
 */
import { randomBytes } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { ResourceExhaustedError } from '../../shared/src/mod.js';

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** ENOSPC or EDQUOT: no room on the repository's file system or over quota. */
export function isDiskFull(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** ENOENT. */
export function isNotFound(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

/** True for the errors rename() gives when the target directory exists and is not empty. */
export function isTargetTaken(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOTEMPTY' || code === 'EEXIST';
}

/** The error a full repository disk gives callers: it names the repository and what could not be written. */
export function diskFullError(dir: string, what: string, cause: unknown): ResourceExhaustedError {
  return new ResourceExhaustedError(`repository disk full at ${dir}: could not write ${what} (${errnoCode(cause) ?? 'no space'})`, { cause });
}

/** A fresh name under `tmpDir`; the pid and random bits keep concurrent writers apart. */
export function tmpPath(tmpDir: string, label: string): string {
  return path.join(tmpDir, `${label}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Creates `file` (it must not exist), writes `parts` in full and fsyncs it. */
export async function writeDurable(file: string, parts: readonly Buffer[]): Promise<void> {
  const fh = await open(file, 'wx', 0o644);
  try {
    let pending = parts.filter((p) => p.length > 0);
    while (pending.length > 0) {
      // writev may stop short (it does just before ENOSPC); carry on with the rest, which then fails properly.
      let { bytesWritten } = await fh.writev(pending);
      const rest: Buffer[] = [];
      for (const p of pending) {
        if (bytesWritten >= p.length) bytesWritten -= p.length;
        else {
          rest.push(p.subarray(bytesWritten));
          bytesWritten = 0;
        }
      }
      pending = rest;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Makes a rename or a new entry in `dir` durable. Some file systems refuse to
 * fsync a directory (EINVAL); the entry is then as durable as they allow.
 */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch (err) {
    const code = errnoCode(err);
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'ENOTSUP') throw err;
  } finally {
    await fh.close();
  }
}

/** Removes a temp file or directory; a failure here must not hide the error that got us here. */
export async function removeQuietly(p: string): Promise<void> {
  await rm(p, { recursive: true, force: true }).catch(() => undefined);
}
