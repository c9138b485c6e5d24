/** Verification of a catalogued backup: the repository re-hashes every chunk the backup references. */
import { RepositoryClient, type BackupRecord, type Transport } from '../../shared/src/mod.js';

export interface VerifyReport {
  chunksChecked: number;
  chunksTotal: number;
  bad: { digest: string; reason: string; disk: string; offset: number }[];
  done: boolean;
}

/** Streams progress reports; the last one (done) lists every bad chunk found. */
export async function verifyInRepository(
  backup: BackupRecord,
  transport: Transport,
  onReport: (r: VerifyReport) => void | Promise<void>,
): Promise<VerifyReport> {
  const repo = new RepositoryClient(backup.repository, { transport });
  try {
    const r = await repo.verify(backup.id, (p) => void onReport({ chunksChecked: p.chunksChecked, chunksTotal: p.chunksTotal, bad: [], done: false }));
    const last: VerifyReport = {
      chunksChecked: r.chunksChecked,
      chunksTotal: r.chunksTotal,
      bad: r.bad.map((b) => ({ digest: b.digestHex, reason: b.reason, disk: b.disk, offset: b.offset })),
      done: true,
    };
    await onReport(last);
    return last;
  } finally {
    repo.close();
  }
}
