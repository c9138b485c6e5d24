/**
 * HTTP plumbing of the array's REST API: bounded bodies, JSON and raw answers, errors as
 * `{error: {name, code, message}}` with the status that fits the code, and the bearer token check.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type http from 'node:http';
import {
  InvalidArgumentError,
  ResourceExhaustedError,
  UnauthenticatedError,
  errorToJson,
  toDoppelError,
  type DoppelError,
  type ErrorCode,
} from '../../shared/src/mod.js';

const STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 409,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 507,
  INTERNAL: 500,
  DATA_LOSS: 500,
  UNAVAILABLE: 503,
  DEADLINE_EXCEEDED: 504,
};

/** Errors whose status is not the code's usual one (413 for a body over the limit, 405 for a method). */
const STATUS_OVERRIDE = new WeakMap<DoppelError, number>();

export function withStatus<E extends DoppelError>(err: E, status: number): E {
  STATUS_OVERRIDE.set(err, status);
  return err;
}

export function statusOf(err: DoppelError): number {
  return STATUS_OVERRIDE.get(err) ?? STATUS[err.code];
}

export function tooLarge(what: string, limit: number): ResourceExhaustedError {
  return withStatus(new ResourceExhaustedError(`${what} is over the limit of ${limit} bytes`), 413);
}

/** The request body, refused (413) when it says or turns out to be over `limit` bytes. */
export async function readBody(req: http.IncomingMessage, limit: number, what: string): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) throw tooLarge(what, limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    size += c.length;
    if (size > limit) throw tooLarge(what, limit);
    chunks.push(c);
  }
  return chunks.length === 1 && chunks[0] ? chunks[0] : Buffer.concat(chunks, size);
}

export async function readJson(req: http.IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const body = await readBody(req, limit, 'the JSON body');
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new InvalidArgumentError('the request body must be a JSON object', { cause: err });
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidArgumentError('the request body must be a JSON object');
  return v as Record<string, unknown>;
}

/** Refuses fields a route does not know (a typo must not pass silently). */
export function onlyFields(body: Record<string, unknown>, allowed: readonly string[]): void {
  const extra = Object.keys(body).filter((k) => !allowed.includes(k));
  if (extra.length > 0) throw new InvalidArgumentError(`unknown field${extra.length > 1 ? 's' : ''} ${extra.join(', ')} (this route takes ${allowed.join(', ')})`);
}

/** A whole-number query parameter. */
export function queryInt(url: URL, name: string): number {
  const v = url.searchParams.get(name);
  if (v === null) throw new InvalidArgumentError(`query parameter '${name}' is required`);
  if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v))) throw new InvalidArgumentError(`query parameter '${name}' must be a whole number (got ${JSON.stringify(v)})`);
  return Number(v);
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

export function sendBytes(res: http.ServerResponse, data: Buffer): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': data.length });
  res.end(data);
}

/**
 * Sends an error. When the request body was not read to its end (refused before or while reading it),
 * the connection closes after the answer: the rest of the body must not be taken for the next request.
 */
export function sendError(req: http.IncomingMessage, res: http.ServerResponse, err: unknown): DoppelError {
  const e = toDoppelError(err);
  if (res.headersSent) {
    res.destroy();
    return e;
  }
  const headers: Record<string, string> = {};
  if (!req.complete) headers.connection = 'close';
  if (e.code === 'UNAUTHENTICATED') headers['www-authenticate'] = 'Bearer realm="doppel-array"';
  for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  sendJson(res, statusOf(e), { error: errorToJson(e) });
  return e;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Checks `Authorization: Bearer TOKEN` against the array's token (constant time). */
export class BearerCheck {
  private readonly want: Buffer;

  constructor(token: string) {
    this.want = digest(token);
  }

  check(req: http.IncomingMessage): void {
    const h = req.headers.authorization;
    if (h === undefined) throw new UnauthenticatedError('this storage array needs a bearer token (Authorization: Bearer TOKEN)');
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    if (!m?.[1] || !timingSafeEqual(digest(m[1]), this.want)) throw new UnauthenticatedError('the bearer token is not this storage array\'s');
  }
}
