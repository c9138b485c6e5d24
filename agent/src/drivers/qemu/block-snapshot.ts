/**
 * External snapshots of a running (or paused) QEMU's disks over QMP, their reverse, and the block graph queries
 * both need.
 *
 * A snapshot of disk node N: a new qcow2 overlay whose backing file is N's image is created with qemu-img,
 * added to QEMU with `blockdev-add` (`backing: null`: blockdev-snapshot attaches N itself), then
 * `blockdev-snapshot {node: N, overlay: O}` in a `transaction` (with any extra actions, e.g. a dirty bitmap on
 * O, atomically). From then on the guest writes O and N is frozen: QEMU 10 reopens N read-only and drops its
 * write lock, so the base can be read by qemu-img/qemu-nbd on the host, or exported by the QEMU itself. The node
 * names stay: N names the frozen base, O the new active layer (query-block shows O as the device's root).
 * blockdev-snapshot drains I/O itself, so it is atomic against guest writes whether the vCPUs run or not; in
 * the suspended window of a migration it adds no extra pause.
 *
 * The reverse, commitOverlay, folds layers back into a base with `block-commit`: an active commit (the top is
 * the device's root) runs as a mirror until `ready`, where a caller can act (carry dirty bitmaps) before
 * `job-complete` pivots the device onto the base. Layers that left the chain are deleted from the graph.
 */
import { existsSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { checkImagePath, createQcow2, type ImageFormat } from './qcow2.js';
import { QmpError, type JsonObject, type QmpClient } from './qmp.js';

/** QEMU's rule for node names (and ours for job ids): a letter first, then letters, digits, '-', '.', '_'. */
const NODE_NAME_RE = /^[A-Za-z][A-Za-z0-9._-]{0,30}$/;

/** A dirty bitmap as query-named-block-nodes reports it. */
export interface DirtyBitmapState {
  name: string;
  /** Enabled: guest writes set bits. */
  recording: boolean;
  persistent: boolean;
  /** In use by an operation (an NBD export, a job); it cannot be changed or removed meanwhile. */
  busy: boolean;
  granularity: number;
  /** Dirty bytes. */
  count: number;
  /** Loaded from an image that was not closed cleanly: its bits are unreliable and it can only be removed. */
  inconsistent: boolean;
}

/** A block node, narrowed from query-named-block-nodes. */
export interface BlockNode {
  nodeName: string;
  /** "qcow2", "raw", "file", ... */
  driver: string;
  /** The image file (for a format node, the file under it). */
  filename: string;
  readOnly: boolean;
  /** Guest-visible size (for a format node); the file's size for a protocol node. */
  virtualSize: number;
  /** The backing image's resolved filename, when the node has one. */
  backingFilename: string | null;
  dirtyBitmaps: DirtyBitmapState[];
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const FORMAT_DRIVERS = new Set(['qcow2', 'raw']);

/** Names QEMU generates for nodes it opened itself (a backing file from an image header). */
const GENERATED_NODE_RE = /^#block\d{1,10}$/;

/** Checks a new block node name (or job id): what QEMU accepts, so it fails here with a clear message. */
export function checkNodeName(name: string, field = 'node name'): void {
  if (typeof name !== 'string' || !NODE_NAME_RE.test(name)) {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(name)}: 1 to 31 letters, digits, '-', '.' or '_', starting with a letter`);
  }
}

/** Checks a reference to an existing node: a name as checkNodeName allows, or one QEMU generated (`#block123`). */
export function checkNodeRef(name: string, field = 'node name'): void {
  if (typeof name === 'string' && GENERATED_NODE_RE.test(name)) return;
  checkNodeName(name, field);
}

function parseBitmap(b: Obj): DirtyBitmapState {
  return {
    name: typeof b.name === 'string' ? b.name : '',
    recording: b.recording === true,
    persistent: b.persistent === true,
    busy: b.busy === true,
    granularity: typeof b.granularity === 'number' ? b.granularity : 0,
    count: typeof b.count === 'number' ? b.count : 0,
    inconsistent: b.inconsistent === true,
  };
}

function parseNode(n: Obj): BlockNode {
  const image = isObj(n.image) ? n.image : {};
  const full = typeof image['full-backing-filename'] === 'string' ? image['full-backing-filename'] : null;
  const backing = full ?? (typeof n.backing_file === 'string' ? n.backing_file : null);
  return {
    nodeName: typeof n['node-name'] === 'string' ? n['node-name'] : '',
    driver: typeof n.drv === 'string' ? n.drv : '',
    filename: typeof n.file === 'string' ? n.file : '',
    readOnly: n.ro === true,
    virtualSize: typeof image['virtual-size'] === 'number' ? image['virtual-size'] : 0,
    backingFilename: backing,
    dirtyBitmaps: Array.isArray(n['dirty-bitmaps']) ? n['dirty-bitmaps'].filter(isObj).map(parseBitmap) : [],
  };
}

/** Every named block node (`query-named-block-nodes`, flat). */
export async function queryBlockNodes(qmp: QmpClient): Promise<BlockNode[]> {
  const r = await qmp.execute<unknown>('query-named-block-nodes', { flat: true });
  if (!Array.isArray(r)) throw new FailedPreconditionError(`query-named-block-nodes on ${qmp.socketPath}: the reply is not a list`);
  return r.filter(isObj).map(parseNode);
}

/** One node by name; NotFoundError when QEMU has none. */
export async function findBlockNode(qmp: QmpClient, node: string): Promise<BlockNode> {
  const found = (await queryBlockNodes(qmp)).find((n) => n.nodeName === node);
  if (!found) throw new NotFoundError(`QEMU at ${qmp.socketPath} has no block node ${node}`);
  return found;
}

/**
 * The node at the root of a disk device (qdev id, e.g. `disk0-dev`): `disk0` until a snapshot, the newest
 * overlay after one. NotFoundError when no device has that id.
 */
export async function activeNode(qmp: QmpClient, deviceId: string): Promise<string> {
  const r = await qmp.execute<unknown>('query-block');
  const list = Array.isArray(r) ? r.filter(isObj) : [];
  for (const b of list) {
    const qdev = typeof b.qdev === 'string' ? b.qdev : '';
    // "/machine/peripheral/<id>/virtio-backend" for -device ...,id=<id>
    if (qdev !== deviceId && !qdev.startsWith(`/machine/peripheral/${deviceId}/`) && qdev !== `/machine/peripheral/${deviceId}`) continue;
    const inserted = isObj(b.inserted) ? b.inserted : null;
    const name = inserted && typeof inserted['node-name'] === 'string' ? inserted['node-name'] : null;
    if (!name) throw new FailedPreconditionError(`disk device ${deviceId} has no medium`);
    return name;
  }
  throw new NotFoundError(`QEMU at ${qmp.socketPath} has no block device ${deviceId}`);
}

/**
 * The chain of format nodes from `node` down through its backing files, top first. Backing nodes QEMU opened
 * itself (from an image header, after a restart) have generated names like `#block123`.
 */
export async function queryChain(qmp: QmpClient, node: string): Promise<BlockNode[]> {
  const nodes = await queryBlockNodes(qmp);
  const top = nodes.find((n) => n.nodeName === node);
  if (!top) throw new NotFoundError(`QEMU at ${qmp.socketPath} has no block node ${node}`);
  const chain = [top];
  let cur = top;
  while (cur.backingFilename) {
    const want = cur.backingFilename;
    const next = nodes.find((n) => FORMAT_DRIVERS.has(n.driver) && n.filename === want && !chain.includes(n));
    if (!next) throw new FailedPreconditionError(`block node ${cur.nodeName} has backing file ${want}, but no format node of QEMU opens it`);
    chain.push(next);
    cur = next;
  }
  return chain;
}

/** A snapshot taken: `node` is the frozen base now, `overlayNode` the layer the guest writes. */
export interface ExternalSnapshot {
  /** The node that was active and is now the frozen base. */
  node: string;
  overlayNode: string;
  overlayPath: string;
  /** The base's image file and format. */
  basePath: string;
  baseFormat: ImageFormat;
  sizeBytes: number;
  /** How long the transaction took, ms (QEMU drains I/O inside it). */
  transactionMs: number;
}

export interface ExternalSnapshotOptions {
  /** The node to freeze: the disk's active node (see activeNode). */
  node: string;
  /** The new overlay image (absolute; must not exist). */
  overlayPath: string;
  /** The overlay's node name (at most 26 characters: its file node is `<name>-file`). */
  overlayNode: string;
  /** What the overlay's header names as its backing file (default: the base's absolute path). */
  backingHeaderName?: string;
  /** More `transaction` actions to run atomically with the snapshot (e.g. block-dirty-bitmap-add on the overlay). */
  extraActions?: JsonObject[];
  logger?: Logger;
}

/**
 * The first half of a snapshot, done before the suspended window: the overlay image is created and added to
 * QEMU, unattached. `commit` runs the transaction (the only step that needs the window); `cancel` undoes the
 * preparation. Both are idempotent, and after either the other is refused.
 */
export interface PreparedSnapshot {
  readonly node: string;
  readonly overlayNode: string;
  readonly overlayPath: string;
  commit(extraActions?: JsonObject[]): Promise<ExternalSnapshot>;
  cancel(): Promise<void>;
}

/**
 * Prepares an external snapshot of block node `node` (see PreparedSnapshot). AlreadyExistsError when the overlay
 * file or node exists; NotFoundError for an unknown node; FailedPreconditionError for a node that is not a
 * disk's writable layer.
 */
export async function prepareExternalSnapshot(qmp: QmpClient, opts: ExternalSnapshotOptions): Promise<PreparedSnapshot> {
  checkNodeRef(opts.node);
  checkNodeName(opts.overlayNode, 'overlay node name');
  if (opts.overlayNode.length > 26) throw new InvalidArgumentError(`overlay node name ${opts.overlayNode} is over 26 characters (its file node adds '-file')`);
  checkImagePath(opts.overlayPath, 'overlay path');
  const log = (opts.logger ?? silentLogger()).child({ component: 'block-snapshot', node: opts.node, overlay: opts.overlayNode });
  const nodes = await queryBlockNodes(qmp);
  const base = nodes.find((n) => n.nodeName === opts.node);
  if (!base) throw new NotFoundError(`QEMU at ${qmp.socketPath} has no block node ${opts.node} to snapshot`);
  if (!FORMAT_DRIVERS.has(base.driver)) throw new FailedPreconditionError(`block node ${opts.node} is a ${base.driver} node, not a qcow2 or raw disk`);
  if (base.readOnly) throw new FailedPreconditionError(`block node ${opts.node} is read-only: it is not a disk's active layer (already snapshotted?)`);
  if (nodes.some((n) => n.nodeName === opts.overlayNode || n.nodeName === `${opts.overlayNode}-file`)) {
    throw new AlreadyExistsError(`QEMU at ${qmp.socketPath} already has a block node ${opts.overlayNode}`);
  }
  if (existsSync(opts.overlayPath)) throw new AlreadyExistsError(`overlay image ${opts.overlayPath} already exists`);
  const baseFormat = base.driver as ImageFormat;

  // -u: the base is open read-write in QEMU; qemu-img need not open it, the size comes from QEMU.
  await createQcow2(opts.overlayPath, {
    sizeBytes: base.virtualSize,
    backing: { path: base.filename, format: baseFormat, unsafe: true, ...(opts.backingHeaderName !== undefined ? { headerName: opts.backingHeaderName } : {}) },
  });
  try {
    await qmp.execute('blockdev-add', {
      driver: 'qcow2',
      'node-name': opts.overlayNode,
      file: { driver: 'file', 'node-name': `${opts.overlayNode}-file`, filename: opts.overlayPath, aio: 'threads', cache: { direct: false, 'no-flush': false } },
      backing: null,
      discard: 'unmap',
    });
  } catch (err) {
    rmSync(opts.overlayPath, { force: true });
    throw err;
  }
  let state: 'prepared' | 'committed' | 'cancelled' = 'prepared';
  let result: ExternalSnapshot | null = null;
  const cancel = async (): Promise<void> => {
    if (state !== 'prepared') return;
    state = 'cancelled';
    await deleteNode(qmp, opts.overlayNode).catch((e: unknown) => log.warn({ err: e }, 'could not delete the overlay node of a cancelled snapshot'));
    rmSync(opts.overlayPath, { force: true });
  };
  return {
    node: opts.node,
    overlayNode: opts.overlayNode,
    overlayPath: opts.overlayPath,
    cancel,
    async commit(extraActions?: JsonObject[]): Promise<ExternalSnapshot> {
      if (state === 'committed' && result) return result;
      if (state === 'cancelled') throw new FailedPreconditionError(`the snapshot of ${opts.node} onto ${opts.overlayNode} was cancelled`);
      const t0 = performance.now();
      try {
        await qmp.execute('transaction', {
          actions: [{ type: 'blockdev-snapshot', data: { node: opts.node, overlay: opts.overlayNode } }, ...(opts.extraActions ?? []), ...(extraActions ?? [])],
        });
      } catch (err) {
        await cancel();
        throw err;
      }
      const transactionMs = performance.now() - t0;
      state = 'committed';
      log.debug({ transactionMs }, 'external snapshot taken');
      result = { node: opts.node, overlayNode: opts.overlayNode, overlayPath: opts.overlayPath, basePath: base.filename, baseFormat, sizeBytes: base.virtualSize, transactionMs };
      return result;
    },
  };
}

/**
 * Takes an external snapshot of block node `node` in one go (prepareExternalSnapshot, then commit). On failure
 * nothing is left behind: the overlay node is deleted and its file removed.
 */
export async function createExternalSnapshot(qmp: QmpClient, opts: ExternalSnapshotOptions): Promise<ExternalSnapshot> {
  const prepared = await prepareExternalSnapshot(qmp, opts);
  return prepared.commit();
}

/** `blockdev-del`; a node that is gone already is fine. */
export async function deleteNode(qmp: QmpClient, node: string): Promise<void> {
  try {
    await qmp.execute('blockdev-del', { 'node-name': node });
  } catch (err) {
    if (err instanceof QmpError && /not found|cannot find|failed to find/i.test(err.desc)) return;
    throw err;
  }
}

export interface CommitOptions {
  /** The disk's active node (the device's root). */
  active: string;
  /** The highest layer to fold (default `active`: an active commit). */
  top?: string;
  /** The layer to fold into: a backing node below `top`. */
  base: string;
  /** Default `commit-<base>`. */
  jobId?: string;
  /** Bound on the whole job (default 10 min); past it the job is cancelled and nothing changes. */
  timeoutMs?: number;
  /**
   * Active commit only: runs once the job is `ready` (base and top in sync, the base writable) and before the
   * pivot. An error here cancels the commit.
   */
  beforeComplete?: (layers: { top: string; base: string }) => Promise<void>;
  /** Remove the folded layers' image files once they are out of the graph (default false). */
  deleteFiles?: boolean;
  logger?: Logger;
}

/** What a commit folded. */
export interface CommitResult {
  /** The nodes that left the chain, top first, with their files. */
  removed: { node: string; filename: string }[];
  durationMs: number;
}

interface JobInfo {
  id: string;
  status: string;
  error: string | null;
}

async function queryJob(qmp: QmpClient, id: string): Promise<JobInfo | null> {
  const r = await qmp.execute<unknown>('query-jobs');
  const list = Array.isArray(r) ? r.filter(isObj) : [];
  const j = list.find((x) => x.id === id);
  if (!j) return null;
  return { id, status: typeof j.status === 'string' ? j.status : '', error: typeof j.error === 'string' ? j.error : null };
}

async function waitJob(qmp: QmpClient, id: string, until: readonly string[], deadline: number): Promise<JobInfo> {
  for (;;) {
    const j = await queryJob(qmp, id);
    if (!j) throw new FailedPreconditionError(`block job ${id} disappeared`);
    if (until.includes(j.status) || j.status === 'concluded') return j;
    if (Date.now() > deadline) throw new DeadlineExceededError(`block job ${id} is still ${j.status}`);
    await sleep(10);
  }
}

/**
 * Folds the layers from `top` down to just above `base` into `base` with block-commit, then deletes them from
 * the graph (and, with deleteFiles, from disk). Works with the guest running or paused. Data is never lost: a
 * failed or cancelled commit leaves the chain as it was (the base may hold some of the top's blocks, which the
 * chain still reads from the top).
 */
export async function commitOverlay(qmp: QmpClient, opts: CommitOptions): Promise<CommitResult> {
  checkNodeRef(opts.active, 'active node');
  checkNodeRef(opts.base, 'base node');
  const top = opts.top ?? opts.active;
  checkNodeRef(top, 'top node');
  const jobId = opts.jobId ?? `commit-${opts.base.replace(/[^A-Za-z0-9._-]/g, '')}`.slice(0, 31);
  checkNodeName(jobId, 'job id');
  const log = (opts.logger ?? silentLogger()).child({ component: 'block-commit', top, base: opts.base });
  const chain = await queryChain(qmp, opts.active);
  const topAt = chain.findIndex((n) => n.nodeName === top);
  const baseAt = chain.findIndex((n) => n.nodeName === opts.base);
  if (topAt < 0) throw new NotFoundError(`block node ${top} is not in the chain of ${opts.active} (${chain.map((n) => n.nodeName).join(' → ')})`);
  if (baseAt <= topAt) throw new InvalidArgumentError(`block node ${opts.base} is not below ${top} in the chain of ${opts.active} (${chain.map((n) => n.nodeName).join(' → ')})`);
  const removed = chain.slice(topAt, baseAt).map((n) => ({ node: n.nodeName, filename: n.filename }));
  const isActive = topAt === 0;
  const t0 = performance.now();
  const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
  const args: JsonObject = { 'job-id': jobId, device: opts.active, 'base-node': opts.base, 'auto-finalize': true, 'auto-dismiss': false };
  if (!isActive) args['top-node'] = top;
  await qmp.execute('block-commit', args);
  let job: JobInfo;
  try {
    job = await waitJob(qmp, jobId, isActive ? ['ready'] : [], deadline);
    if (isActive && job.status === 'ready') {
      await opts.beforeComplete?.({ top, base: opts.base });
      await qmp.execute('job-complete', { id: jobId });
      job = await waitJob(qmp, jobId, [], deadline);
    }
  } catch (err) {
    log.warn({ err }, 'block commit failed; cancelling it');
    await qmp.execute('job-cancel', { id: jobId }).catch(() => undefined);
    await waitJob(qmp, jobId, [], Date.now() + 30_000).catch(() => undefined);
    await qmp.execute('job-dismiss', { id: jobId }).catch(() => undefined);
    throw err;
  }
  await qmp.execute('job-dismiss', { id: jobId });
  if (job.error) throw new FailedPreconditionError(`block-commit of ${top} into ${opts.base} failed: ${job.error}`);
  // Nodes blockdev-add made stay in the graph (the monitor holds them) until deleted; ones QEMU opened from a
  // header went with the chain. A format node given its file as a separate node (`-blockdev` diskN over
  // diskN-file, as the command line makes them) leaves that file node behind, holding the file open: it goes too.
  const fileNodes = (await queryBlockNodes(qmp)).filter((n) => n.driver === 'file' && removed.some((r) => n.nodeName === `${r.node}-file` && n.filename === r.filename));
  for (const r of removed) {
    try {
      await deleteNode(qmp, r.node);
    } catch (err) {
      if (!(err instanceof QmpError && /owned by the monitor|in use/i.test(err.desc))) throw err;
    }
  }
  for (const f of fileNodes) {
    try {
      await deleteNode(qmp, f.nodeName);
    } catch (err) {
      if (!(err instanceof QmpError && /owned by the monitor|in use/i.test(err.desc))) throw err;
    }
  }
  if (opts.deleteFiles) for (const r of removed) rmSync(r.filename, { force: true });
  const durationMs = performance.now() - t0;
  log.debug({ durationMs, removed }, 'block commit done');
  return { removed, durationMs };
}

/**
 * Gives disk node `node` (a qcow2 node over `<node>-file`, opened without a backing file: `backing: null`, or a
 * header that named none at the time) `basePath` as its backing, in QEMU: the base is added read-only as node
 * `baseNode`, and `node` is reopened with it as its backing (blockdev-reopen). The image header must already
 * name the base (qemu-img rebase -u, or created so), so that a restarted QEMU opens the same chain. Works paused
 * (nothing reads the disk meanwhile); every read of the disk then falls through to the base where the disk holds
 * nothing.
 */
export async function attachBacking(qmp: QmpClient, opts: { node: string; basePath: string; baseNode: string }): Promise<void> {
  checkNodeName(opts.node);
  checkNodeName(opts.baseNode, 'base node name');
  checkImagePath(opts.basePath, 'base image path');
  await qmp.execute('blockdev-add', {
    driver: 'qcow2',
    'node-name': opts.baseNode,
    'read-only': true,
    file: { driver: 'file', filename: opts.basePath, 'read-only': true, aio: 'threads' },
  });
  try {
    await qmp.execute('blockdev-reopen', {
      options: [{ driver: 'qcow2', 'node-name': opts.node, file: `${opts.node}-file`, discard: 'unmap', backing: opts.baseNode }],
    });
  } catch (err) {
    await deleteNode(qmp, opts.baseNode).catch(() => undefined);
    throw err;
  }
}
