/**
 * manifest.json: the commit record of a backup. JSON so that an operator can
 * read it with anything; checked field by field when read back.
 */
import { DataCorruptionError, REPO_FORMAT, type RepoDiskManifest, type RepoManifest } from '../../shared/src/mod.js';

/** manifest.json bytes, with the format number. */
export function serializeManifest(m: RepoManifest): Buffer {
  return Buffer.from(JSON.stringify({ format: REPO_FORMAT, ...m }, null, 1) + '\n');
}

function field<T>(obj: Record<string, unknown>, key: string, type: 'string' | 'number', what: string): T {
  const v = obj[key];
  if (typeof v !== type || (type === 'number' && !Number.isSafeInteger(v))) {
    throw new DataCorruptionError(`${what}: manifest field '${key}' is ${JSON.stringify(v)}`);
  }
  return v as T;
}

/** Parses a manifest; anything malformed is DataCorruptionError naming `what`. */
export function parseManifest(text: string, what: string): RepoManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new DataCorruptionError(`${what}: manifest.json is not JSON`, { cause: err });
  }
  if (typeof raw !== 'object' || raw === null) throw new DataCorruptionError(`${what}: manifest.json is not an object`);
  const o = raw as Record<string, unknown>;
  if (o.format !== REPO_FORMAT) throw new DataCorruptionError(`${what}: manifest format ${JSON.stringify(o.format)}`);
  if (!Array.isArray(o.disks)) throw new DataCorruptionError(`${what}: manifest has no disk list`);
  const disks: RepoDiskManifest[] = (o.disks as unknown[]).map((d) => {
    if (typeof d !== 'object' || d === null) throw new DataCorruptionError(`${what}: a manifest disk entry is not an object`);
    const e = d as Record<string, unknown>;
    return {
      name: field<string>(e, 'name', 'string', what),
      sizeBytes: field<number>(e, 'sizeBytes', 'number', what),
      chunkSize: field<number>(e, 'chunkSize', 'number', what),
      chunks: field<number>(e, 'chunks', 'number', what),
      zeroChunks: field<number>(e, 'zeroChunks', 'number', what),
      indexSha256: field<string>(e, 'indexSha256', 'string', what),
      contentHash: field<string>(e, 'contentHash', 'string', what),
    };
  });
  return {
    backupId: field<string>(o, 'backupId', 'string', what),
    createdAt: field<string>(o, 'createdAt', 'string', what),
    disks,
    metadataJson: field<string>(o, 'metadataJson', 'string', what),
  };
}
