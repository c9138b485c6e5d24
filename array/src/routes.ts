/** The array's REST routes (listed in shared/src/array/api.ts) on top of the store. */
import type http from 'node:http';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, type Logger } from '../../shared/src/mod.js';
import {
  ARRAY_MAX_GROUP,
  ARRAY_MAX_IO_BYTES,
  requireLabel,
  requireSnapshotId,
  requireVolumeName,
  type ArrayBitmapJson,
  type ArrayFaults,
} from '../../shared/src/array/mod.js';
import { BearerCheck, onlyFields, queryInt, readBody, readJson, sendBytes, sendError, sendJson, withStatus } from './http.js';
import type { ArrayStore, ArrayWrite, BlockBitmap } from './store.js';

const MAX_JSON = 1024 * 1024;
/** A batch carries its data in base64: 4/3 of the data limit and room for the JSON around it. */
const MAX_BATCH_JSON = Math.ceil((ARRAY_MAX_IO_BYTES * 4) / 3) + 64 * 1024;
const BASE64_RE = /^[A-Za-z0-9+/]*={0,2}$/;

export interface RouteContext {
  store: ArrayStore;
  faults: ArrayFaults;
  token: BearerCheck | undefined;
  log: Logger;
}

interface Call {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  url: URL;
  params: Record<string, string>;
}

type Handler = (ctx: RouteContext, call: Call) => Promise<void>;

function bitmapJson(b: BlockBitmap): ArrayBitmapJson {
  return { blockSize: b.blockSize, blocks: b.blocks, bitmap: Buffer.from(b.bitmap.buffer, b.bitmap.byteOffset, b.bitmap.byteLength).toString('base64') };
}

function volumeParam(call: Call, key = 'volume'): string {
  return requireVolumeName('volume name', call.params[key]);
}

function snapshotParam(call: Call): string {
  return requireSnapshotId('snapshot id', call.params.id);
}

function requireBool(field: string, v: unknown): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw new InvalidArgumentError(`${field} must be true or false (got ${JSON.stringify(v)})`);
  return v;
}

function parseBatch(body: Record<string, unknown>): ArrayWrite[] {
  onlyFields(body, ['writes']);
  const list = body.writes;
  if (!Array.isArray(list) || list.length === 0 || list.length > ARRAY_MAX_GROUP) {
    throw new InvalidArgumentError(`writes must be a list of 1 to ${ARRAY_MAX_GROUP} {volume, offset, data} objects`);
  }
  return list.map((w: unknown, i) => {
    if (typeof w !== 'object' || w === null || Array.isArray(w)) throw new InvalidArgumentError(`writes[${i}] must be an object {volume, offset, data}`);
    const o = w as Record<string, unknown>;
    onlyFields(o, ['volume', 'offset', 'data']);
    if (typeof o.data !== 'string' || o.data.length % 4 !== 0 || !BASE64_RE.test(o.data)) throw new InvalidArgumentError(`writes[${i}].data must be base64`);
    if (typeof o.offset !== 'number') throw new InvalidArgumentError(`writes[${i}].offset must be a number`);
    return { volume: requireVolumeName(`writes[${i}].volume`, o.volume), offset: o.offset, data: Buffer.from(o.data, 'base64') };
  });
}

interface Route {
  /** Path segments; ':x' takes any one segment as params.x. */
  pattern: string[];
  methods: Record<string, Handler>;
}

const ROUTES: Route[] = [
  {
    pattern: ['v1', 'array'],
    methods: { GET: async ({ store }, { res }) => sendJson(res, 200, await store.info()) },
  },
  {
    pattern: ['v1', 'volumes'],
    methods: {
      GET: async ({ store }, { res }) => sendJson(res, 200, { volumes: await store.listVolumes() }),
      POST: async ({ store }, { req, res }) => {
        const body = await readJson(req, MAX_JSON);
        onlyFields(body, ['name', 'sizeMib']);
        const name = requireVolumeName('name', body.name);
        if (typeof body.sizeMib !== 'number') throw new InvalidArgumentError(`sizeMib must be a number (got ${JSON.stringify(body.sizeMib)})`);
        sendJson(res, 201, await store.createVolume(name, body.sizeMib));
      },
    },
  },
  {
    pattern: ['v1', 'volumes', ':volume'],
    methods: {
      GET: async ({ store }, call) => sendJson(call.res, 200, await store.getVolume(volumeParam(call))),
      DELETE: async ({ store }, call) => {
        const name = volumeParam(call);
        await store.deleteVolume(name);
        sendJson(call.res, 200, { deleted: name });
      },
    },
  },
  {
    pattern: ['v1', 'volumes', ':volume', 'data'],
    methods: {
      GET: async ({ store }, call) => {
        const name = volumeParam(call);
        sendBytes(call.res, await store.read(name, queryInt(call.url, 'offset'), queryInt(call.url, 'length')));
      },
      PUT: async ({ store }, call) => {
        const name = volumeParam(call);
        const offset = queryInt(call.url, 'offset');
        const data = await readBody(call.req, ARRAY_MAX_IO_BYTES, 'a write');
        await store.write(name, offset, data);
        sendJson(call.res, 200, { volume: name, offset, length: data.length });
      },
    },
  },
  {
    pattern: ['v1', 'writes'],
    methods: {
      POST: async ({ store }, { req, res }) => {
        const writes = parseBatch(await readJson(req, MAX_BATCH_JSON));
        await store.writeBatch(writes);
        sendJson(res, 200, { writes: writes.length, bytes: writes.reduce((n, w) => n + w.data.length, 0) });
      },
    },
  },
  {
    pattern: ['v1', 'snapshots'],
    methods: {
      GET: async ({ store }, { res }) => sendJson(res, 200, { snapshots: await store.listSnapshots() }),
      POST: async ({ store, faults }, { req, res }) => {
        const body = await readJson(req, MAX_JSON);
        onlyFields(body, ['volumes', 'label']);
        if (!Array.isArray(body.volumes)) throw new InvalidArgumentError('volumes must be a list of volume names');
        const names = body.volumes.map((v: unknown, i) => requireVolumeName(`volumes[${i}]`, v));
        const label = requireLabel(body.label);
        if (faults.refuseSnapshots) {
          throw new FailedPreconditionError(`array ${store.name} refuses to snapshot: snapshots are disabled on the array (injected fault refuseSnapshots)`);
        }
        sendJson(res, 201, await store.createSnapshot(names, label));
      },
    },
  },
  {
    pattern: ['v1', 'snapshots', ':id'],
    methods: {
      GET: async ({ store }, call) => sendJson(call.res, 200, await store.getSnapshot(snapshotParam(call))),
      DELETE: async ({ store }, call) => {
        const id = snapshotParam(call);
        await store.deleteSnapshot(id);
        sendJson(call.res, 200, { deleted: id });
      },
    },
  },
  {
    pattern: ['v1', 'snapshots', ':id', 'volumes', ':volume', 'data'],
    methods: {
      GET: async ({ store }, call) => {
        const id = snapshotParam(call);
        const vol = volumeParam(call);
        sendBytes(call.res, await store.readSnapshot(id, vol, queryInt(call.url, 'offset'), queryInt(call.url, 'length')));
      },
    },
  },
  {
    pattern: ['v1', 'snapshots', ':id', 'volumes', ':volume', 'allocated'],
    methods: { GET: async ({ store }, call) => sendJson(call.res, 200, bitmapJson(await store.allocated(snapshotParam(call), volumeParam(call)))) },
  },
  {
    pattern: ['v1', 'snapshots', ':id', 'volumes', ':volume', 'diff'],
    methods: {
      GET: async ({ store }, call) => {
        const id = snapshotParam(call);
        const vol = volumeParam(call);
        const base = requireSnapshotId('query parameter base', call.url.searchParams.get('base') ?? undefined);
        sendJson(call.res, 200, bitmapJson(await store.diff(id, vol, base)));
      },
    },
  },
  {
    pattern: ['v1', 'admin', 'faults'],
    methods: {
      GET: async ({ faults }, { res }) => Promise.resolve(sendJson(res, 200, faults)),
      POST: async ({ faults, log }, { req, res }) => {
        const body = await readJson(req, MAX_JSON);
        onlyFields(body, ['refuseSnapshots', 'unavailable']);
        const refuse = requireBool('refuseSnapshots', body.refuseSnapshots);
        const unavailable = requireBool('unavailable', body.unavailable);
        if (refuse !== undefined) faults.refuseSnapshots = refuse;
        if (unavailable !== undefined) faults.unavailable = unavailable;
        log.warn({ faults }, 'faults set');
        sendJson(res, 200, faults);
      },
    },
  },
];

function match(pattern: string[], parts: string[]): Record<string, string> | undefined {
  if (pattern.length !== parts.length) return undefined;
  const params: Record<string, string> = {};
  for (const [i, p] of pattern.entries()) {
    const seg = parts[i] ?? '';
    if (p.startsWith(':')) params[p.slice(1)] = seg;
    else if (p !== seg) return undefined;
  }
  return params;
}

function pathParts(pathname: string): string[] {
  try {
    return pathname
      .replace(/\/+$/, '')
      .split('/')
      .slice(1)
      .map((s) => decodeURIComponent(s));
  } catch (err) {
    throw new InvalidArgumentError(`malformed path ${JSON.stringify(pathname)}`, { cause: err });
  }
}

async function dispatch(ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  ctx.token?.check(req);
  const url = new URL(req.url ?? '/', 'http://array');
  const parts = pathParts(url.pathname);
  const admin = parts[0] === 'v1' && parts[1] === 'admin';
  if (ctx.faults.unavailable && !admin) throw new UnavailableError(`storage array ${ctx.store.name} is unavailable (injected fault unavailable)`);
  const method = req.method ?? 'GET';
  for (const route of ROUTES) {
    const params = match(route.pattern, parts);
    if (!params) continue;
    const handler = route.methods[method];
    if (!handler) {
      const allowed = Object.keys(route.methods).join(', ');
      res.setHeader('allow', allowed);
      throw withStatus(new InvalidArgumentError(`${method} is not allowed on ${url.pathname} (allowed: ${allowed})`), 405);
    }
    return handler(ctx, { req, res, url, params });
  }
  throw new NotFoundError(`no route ${method} ${url.pathname} on storage array ${ctx.store.name}`);
}

export function arrayHandler(ctx: RouteContext): http.RequestListener {
  return (req, res) => {
    const started = process.hrtime.bigint();
    dispatch(ctx, req, res)
      .catch((err: unknown) => {
        if (req.destroyed && !req.complete) {
          // The caller went away while sending (a cut connection): nobody to answer.
          ctx.log.debug({ method: req.method, url: req.url, err: (err as Error).message }, 'request cut off by the caller');
          res.destroy();
          return;
        }
        const e = sendError(req, res, err);
        if (e.code === 'INTERNAL' || e.code === 'DATA_LOSS') ctx.log.error({ err, method: req.method, url: req.url }, 'request failed');
      })
      .finally(() => {
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        ctx.log.debug({ method: req.method, url: req.url, status: res.statusCode, ms }, 'request');
      });
  };
}
