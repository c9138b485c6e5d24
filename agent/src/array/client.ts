/**
 * The agent's client of a storage array's REST API (what a real array's SDK is): typed calls for every
 * route of shared/src/array/api.ts over node's fetch (keep-alive connections), a deadline per call.
 *
 * Failures come back as doppel errors: an array that cannot be reached (refused, reset, DNS) is an
 * UnavailableError and one that does not answer in time a DeadlineExceededError, both naming the array's
 * URL; an error the array answers is the error class it names, with its message.
 */
import {
  AbortedError,
  DataCorruptionError,
  DeadlineExceededError,
  DoppelError,
  InvalidArgumentError,
  UnavailableError,
  errorFromCode,
  isErrorCode,
  type ErrorCode,
} from '../../../shared/src/mod.js';
import {
  requireAligned,
  requireSnapshotId,
  requireVolumeName,
  ARRAY_IO_ALIGN,
  ARRAY_MAX_IO_BYTES,
  type ArrayBitmapJson,
  type ArrayFaults,
  type ArrayInfo,
  type ArraySnapshot,
  type ArrayVolume,
  type ArrayWriteResult,
} from '../../../shared/src/array/mod.js';

export interface ArrayClientOptions {
  /** The array's base URL, http://host:port. */
  url: string;
  /** Bearer token, when the array has one. */
  token?: string;
  /** Deadline of each call, body included (default 30 s). */
  timeoutMs?: number;
}

/** Per call: a different deadline, or a signal that cancels the call (an AbortedError). */
export interface ArrayCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A block bitmap: bit b of `bitmap` (byte b >> 3, bit b & 7, LSB first) is block b, at byte b × blockSize. */
export interface ArrayBitmap {
  blockSize: number;
  /** Blocks in the volume; `bitmap` has ceil(blocks / 8) bytes. */
  blocks: number;
  bitmap: Uint8Array;
}

export interface ArrayBatchWrite {
  volume: string;
  offset: number;
  data: Uint8Array;
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

const STATUS_CODES: Record<number, ErrorCode> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  405: 'INVALID_ARGUMENT',
  409: 'FAILED_PRECONDITION',
  413: 'RESOURCE_EXHAUSTED',
  503: 'UNAVAILABLE',
  504: 'DEADLINE_EXCEEDED',
  507: 'RESOURCE_EXHAUSTED',
};

function causeCode(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

function causeMessage(err: unknown): string {
  const cause = (err as { cause?: unknown } | null)?.cause;
  const inner = cause instanceof Error ? cause.message : '';
  const outer = err instanceof Error ? err.message : String(err);
  return inner && inner !== outer ? `${outer}: ${inner}` : outer;
}

export class ArrayClient {
  readonly url: string;
  private readonly token: string | undefined;
  readonly timeoutMs: number;

  constructor(opts: ArrayClientOptions) {
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch (err) {
      throw new InvalidArgumentError(`storage array URL must be http://HOST:PORT (got ${JSON.stringify(opts.url)})`, { cause: err });
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new InvalidArgumentError(`storage array URL must be http:// or https:// (got ${JSON.stringify(opts.url)})`);
    this.url = u.href.replace(/\/+$/, '');
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    if (!Number.isInteger(this.timeoutMs) || this.timeoutMs <= 0) throw new InvalidArgumentError(`timeoutMs must be a positive integer (got ${this.timeoutMs})`);
  }

  // --- the array and its volumes ---------------------------------------------------------------

  async info(o?: ArrayCallOptions): Promise<ArrayInfo> {
    return this.json('GET', '/v1/array', undefined, o);
  }

  /** POST /v1/volumes → the new volume (sizeBytes = sizeMib MiB, blockSize 64 KiB). */
  async createVolume(name: string, sizeMib: number, o?: ArrayCallOptions): Promise<ArrayVolume> {
    return this.json('POST', '/v1/volumes', { name: requireVolumeName('volume name', name), sizeMib }, o);
  }

  async listVolumes(o?: ArrayCallOptions): Promise<ArrayVolume[]> {
    return (await this.json<{ volumes: ArrayVolume[] }>('GET', '/v1/volumes', undefined, o)).volumes;
  }

  async getVolume(name: string, o?: ArrayCallOptions): Promise<ArrayVolume> {
    return this.json('GET', `/v1/volumes/${ArrayClient.vol(name)}`, undefined, o);
  }

  /** Refused (FailedPreconditionError) while a snapshot covers the volume. */
  async deleteVolume(name: string, o?: ArrayCallOptions): Promise<void> {
    await this.json('DELETE', `/v1/volumes/${ArrayClient.vol(name)}`, undefined, o);
  }

  // --- data path -------------------------------------------------------------------------------

  /** Writes `data` at `offset` (both multiples of 4096, data at most 8 MiB, inside the volume). */
  async write(volume: string, offset: number, data: Uint8Array, o?: ArrayCallOptions): Promise<ArrayWriteResult> {
    requireAligned('write offset', offset, 0, Number.MAX_SAFE_INTEGER);
    requireAligned('write length', data.length, ARRAY_IO_ALIGN, ARRAY_MAX_IO_BYTES);
    const path = `/v1/volumes/${ArrayClient.vol(volume)}/data?offset=${offset}`;
    return this.guard('PUT', path, o, async (signal) => (await this.send('PUT', path, data, 'application/octet-stream', signal)).json() as Promise<ArrayWriteResult>);
  }

  /** Several writes, to one or more volumes, applied as one step: no snapshot falls between them. */
  async writeBatch(writes: readonly ArrayBatchWrite[], o?: ArrayCallOptions): Promise<void> {
    const body = {
      writes: writes.map((w) => ({ volume: requireVolumeName('volume name', w.volume), offset: w.offset, data: Buffer.from(w.data.buffer, w.data.byteOffset, w.data.byteLength).toString('base64') })),
    };
    await this.json('POST', '/v1/writes', body, o);
  }

  /** Reads `length` bytes at `offset` of the live volume (unwritten: zeros). */
  async read(volume: string, offset: number, length: number, o?: ArrayCallOptions): Promise<Buffer> {
    return this.bytes(`/v1/volumes/${ArrayClient.vol(volume)}/data?offset=${ArrayClient.num(offset)}&length=${ArrayClient.num(length)}`, length, o);
  }

  // --- snapshots -------------------------------------------------------------------------------

  /** One snapshot of every named volume at the same instant (a consistency group). */
  async createSnapshot(volumes: readonly string[], label?: string, o?: ArrayCallOptions): Promise<ArraySnapshot> {
    return this.json('POST', '/v1/snapshots', { volumes: volumes.map((v) => requireVolumeName('volume name', v)), ...(label !== undefined ? { label } : {}) }, o);
  }

  /** Oldest first. */
  async listSnapshots(o?: ArrayCallOptions): Promise<ArraySnapshot[]> {
    return (await this.json<{ snapshots: ArraySnapshot[] }>('GET', '/v1/snapshots', undefined, o)).snapshots;
  }

  async getSnapshot(id: string, o?: ArrayCallOptions): Promise<ArraySnapshot> {
    return this.json('GET', `/v1/snapshots/${ArrayClient.snap(id)}`, undefined, o);
  }

  async deleteSnapshot(id: string, o?: ArrayCallOptions): Promise<void> {
    await this.json('DELETE', `/v1/snapshots/${ArrayClient.snap(id)}`, undefined, o);
  }

  /** Reads a volume as it was at the snapshot, whatever was written since. */
  async readSnapshot(id: string, volume: string, offset: number, length: number, o?: ArrayCallOptions): Promise<Buffer> {
    return this.bytes(
      `/v1/snapshots/${ArrayClient.snap(id)}/volumes/${ArrayClient.vol(volume)}/data?offset=${ArrayClient.num(offset)}&length=${ArrayClient.num(length)}`,
      length,
      o,
    );
  }

  /** The 64 KiB blocks that hold data in the snapshot of `volume`. */
  async allocated(id: string, volume: string, o?: ArrayCallOptions): Promise<ArrayBitmap> {
    return ArrayClient.bitmap(await this.json('GET', `/v1/snapshots/${ArrayClient.snap(id)}/volumes/${ArrayClient.vol(volume)}/allocated`, undefined, o));
  }

  /** The blocks written to `volume` after snapshot `baseId` up to snapshot `id` (base not newer than id). */
  async diff(id: string, volume: string, baseId: string, o?: ArrayCallOptions): Promise<ArrayBitmap> {
    const path = `/v1/snapshots/${ArrayClient.snap(id)}/volumes/${ArrayClient.vol(volume)}/diff?base=${ArrayClient.snap(baseId)}`;
    return ArrayClient.bitmap(await this.json('GET', path, undefined, o));
  }

  // --- test faults -----------------------------------------------------------------------------

  async setFaults(faults: Partial<ArrayFaults>, o?: ArrayCallOptions): Promise<ArrayFaults> {
    return this.json('POST', '/v1/admin/faults', faults, o);
  }

  // --- plumbing --------------------------------------------------------------------------------

  private static vol(name: string): string {
    return encodeURIComponent(requireVolumeName('volume name', name));
  }

  private static snap(id: string): string {
    return requireSnapshotId('snapshot id', id);
  }

  private static num(n: number): string {
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError(`offsets and lengths must be whole numbers (got ${n})`);
    return String(n);
  }

  private static bitmap(j: ArrayBitmapJson): ArrayBitmap {
    const bitmap = new Uint8Array(Buffer.from(j.bitmap, 'base64'));
    if (bitmap.length !== Math.ceil(j.blocks / 8)) {
      throw new DataCorruptionError(`storage array sent a bitmap of ${bitmap.length} bytes for ${j.blocks} blocks`);
    }
    return { blockSize: j.blockSize, blocks: j.blocks, bitmap };
  }

  private async json<T>(method: Method, path: string, body: unknown, o: ArrayCallOptions | undefined): Promise<T> {
    return this.guard(method, path, o, async (signal) => {
      const res = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body), 'application/json', signal);
      return (await res.json()) as T;
    });
  }

  private async bytes(path: string, length: number, o: ArrayCallOptions | undefined): Promise<Buffer> {
    return this.guard('GET', path, o, async (signal) => {
      const res = await this.send('GET', path, undefined, undefined, signal);
      const buf = Buffer.from(await res.arrayBuffer());
      if (buf.length !== length) throw new DataCorruptionError(`storage array at ${this.url} sent ${buf.length} bytes for a read of ${length}`);
      return buf;
    });
  }

  private async send(method: Method, path: string, body: string | Uint8Array | undefined, type: string | undefined, signal: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = {};
    if (type !== undefined && body !== undefined) headers['content-type'] = type;
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    const res = await fetch(this.url + path, { method, headers, ...(body !== undefined ? { body } : {}), signal });
    if (res.ok) return res;
    throw await this.httpError(method, path, res);
  }

  /** An error answer as the doppel error it names (or, without a JSON error body, the one its status means). */
  private async httpError(method: Method, path: string, res: Response): Promise<DoppelError> {
    const text = await res.text().catch(() => '');
    try {
      const j = JSON.parse(text) as { error?: { name?: unknown; code?: unknown; message?: unknown } };
      const e = j.error;
      if (e && isErrorCode(e.code) && typeof e.message === 'string') {
        const err = errorFromCode(e.code, e.message);
        if (typeof e.name === 'string') err.name = e.name;
        return err;
      }
    } catch {
      // Not JSON: fall through to the status.
    }
    const code = STATUS_CODES[res.status] ?? (res.status >= 500 ? 'UNAVAILABLE' : 'INTERNAL');
    return errorFromCode(code, `storage array at ${this.url} answered ${method} ${path.split('?')[0]} with HTTP ${res.status}: ${text.slice(0, 200) || res.statusText}`);
  }

  /** Runs one call under its deadline and the caller's signal; maps transport failures to doppel errors. */
  private async guard<T>(method: Method, path: string, o: ArrayCallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const timeoutMs = o?.timeoutMs ?? this.timeoutMs;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = o?.signal ? AbortSignal.any([deadline, o.signal]) : deadline;
    const what = `${method} ${path.split('?')[0]}`;
    try {
      return await fn(signal);
    } catch (err) {
      if (err instanceof DoppelError) throw err;
      if (o?.signal?.aborted) throw new AbortedError(`storage array call ${what} was cancelled`, { cause: err });
      if (deadline.aborted) throw new DeadlineExceededError(`storage array at ${this.url} did not answer ${what} within ${timeoutMs} ms`, { cause: err });
      const code = causeCode(err);
      throw new UnavailableError(`storage array at ${this.url} is unreachable: ${code ? `${code} (${causeMessage(err)})` : causeMessage(err)}`, { cause: err });
    }
  }
}
