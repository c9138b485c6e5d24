/**
 * Changed-block tracking on QEMU: persistent dirty bitmaps (granularity 64 KiB = one bit per DiskView block),
 * read over NBD as `qemu:dirty-bitmap:NAME` block status, and the checkpoint scheme that ties them to external
 * snapshots.
 *
 * The checkpoint scheme. A disk's active layer carries one enabled persistent bitmap `doppel-cbt@<since>`: every
 * guest write since checkpoint `<since>` ('' = since the disk was created) set its bit. Bitmaps belong to a
 * node, i.e. to one layer of the chain, and that is what makes the scheme simple:
 *
 * - snapshotWithCheckpoint(C), in the frozen window: one `transaction` does `blockdev-snapshot` onto a new
 *   overlay O and `block-dirty-bitmap-add O doppel-cbt@C`. The guest's next write goes to O and sets a bit of
 *   @C; the old bitmap `doppel-cbt@<since>` stays in the base, which QEMU reopened read-only, so it is frozen at
 *   exactly the snapshot's instant: those are the snapshot's changes (readCheckpointChanges, through an NBD
 *   export of the read-only base). No bitmap is copied or disabled, and nothing else has to be atomic.
 * - endCheckpoint, mirroring the sim driver's SnapshotOutcome:
 *   - commit: @C on O is the new base of change tracking. The base's @<since> is obsolete but read-only for now;
 *     it goes when the chain folds (carryBitmapsOnCommit). `alsoChanged` blocks (a backup clone's own writes)
 *     are OR-ed into @C (markDirty), and `null` drops tracking.
 *   - abort: as if the checkpoint never happened: one transaction adds `doppel-cbt@<since>` on O, merges the
 *     base's @<since> and O's @C into it, and removes @C. Tracking goes on from <since>.
 *   - invalidate: @C is removed, so O has no tracking bitmap and the next snapshot reports `null` changes (a full
 *     backup), after which its own checkpoint starts tracking afresh.
 * - Folding the chain back (commitOverlay with carryBitmapsOnCommit as its `beforeComplete`): while the active
 *   commit is `ready`, the base is writable; each tracking bitmap of the top is merged into a same-named bitmap
 *   of the base (created if need be), and the base's other doppel-cbt bitmaps (obsolete) are removed, in one
 *   transaction. Writes the commit job copies into the base also set the base's bits, but only for blocks the
 *   top holds, which the top's bitmap has already.
 * - Lost tracking: a QEMU that did not close an image cleanly leaves its persistent bitmaps marked in-use; the
 *   next QEMU loads them as `inconsistent` (and a bitmap added since the last clean close is simply absent).
 *   Either way the next snapshot reports `null` changes, never a wrong incremental.
 */
import {
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from '../../../../shared/src/errors.js';
import { silentLogger, type Logger } from '../../../../shared/src/logging.js';
import { DISK_BLOCK_SIZE } from '../../../../shared/src/protocol/types.js';
import type { BlockChanges, SnapshotOutcome } from '../driver.js';
import {
  deleteNode,
  findBlockNode,
  queryBlockNodes,
  type BlockNode,
  type DirtyBitmapState,
  type ExternalSnapshot,
  type ExternalSnapshotOptions,
  prepareExternalSnapshot,
  type PreparedSnapshot,
} from './block-snapshot.js';
import { bitmapWords, setBlockRange } from './qcow2.js';
import { exportNode, NbdClient, NBD_STATE_DIRTY } from './qcow2-view.js';
import type { JsonObject, QmpClient } from './qmp.js';

export type { DirtyBitmapState } from './block-snapshot.js';

/** One bit per 64 KiB block, as DiskView and BlockChanges count them. */
export const CBT_GRANULARITY = DISK_BLOCK_SIZE;
/** Prefix of doppel's tracking bitmaps; the rest of the name is the checkpoint they are relative to. */
export const CBT_PREFIX = 'doppel-cbt@';

const CHECKPOINT_RE = /^[A-Za-z0-9._:-]{1,128}$/;
let tmpCounter = 0;

function checkCheckpoint(id: string, allowEmpty: boolean): void {
  if (allowEmpty && id === '') return;
  if (typeof id !== 'string' || !CHECKPOINT_RE.test(id)) throw new InvalidArgumentError(`checkpoint id ${JSON.stringify(id)}: 1 to 128 letters, digits, '.', '_', ':' or '-'`);
}

/** The tracking bitmap's name for changes since checkpoint `since` ('' = since the disk was created). */
export function cbtBitmapName(since: string): string {
  checkCheckpoint(since, true);
  return CBT_PREFIX + since;
}

/** The checkpoint a tracking bitmap is relative to, or null for a bitmap that is not doppel's. */
export function cbtSince(name: string): string | null {
  return name.startsWith(CBT_PREFIX) ? name.slice(CBT_PREFIX.length) : null;
}

function checkBitmapName(name: string): void {
  if (typeof name !== 'string' || !name || Buffer.byteLength(name) > 1023 || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidArgumentError(`dirty bitmap name ${JSON.stringify(name)}: 1 to 1023 bytes without control characters`);
  }
}

export interface AddBitmapOptions {
  /** Stored in the qcow2 image at a clean close (default true). */
  persistent?: boolean;
  /** Created not recording (default false). */
  disabled?: boolean;
  /** Default CBT_GRANULARITY. */
  granularity?: number;
}

/** The `block-dirty-bitmap-add` arguments, for `transaction` actions and direct calls alike. */
export function bitmapAddArgs(node: string, name: string, opts: AddBitmapOptions = {}): JsonObject {
  checkBitmapName(name);
  return { node, name, persistent: opts.persistent ?? true, disabled: opts.disabled ?? false, granularity: opts.granularity ?? CBT_GRANULARITY };
}

/** Adds a dirty bitmap to a node (persistent and recording by default). */
export async function addDirtyBitmap(qmp: QmpClient, node: string, name: string, opts: AddBitmapOptions = {}): Promise<void> {
  await qmp.execute('block-dirty-bitmap-add', bitmapAddArgs(node, name, opts));
}

/** Removes a dirty bitmap (from the image too, when persistent). A missing one is fine unless `mustExist`. */
export async function removeDirtyBitmap(qmp: QmpClient, node: string, name: string, opts: { mustExist?: boolean } = {}): Promise<void> {
  checkBitmapName(name);
  if (!opts.mustExist && !(await listDirtyBitmaps(qmp, node)).some((b) => b.name === name)) return;
  await qmp.execute('block-dirty-bitmap-remove', { node, name });
}

/** Clears every bit. */
export async function clearDirtyBitmap(qmp: QmpClient, node: string, name: string): Promise<void> {
  checkBitmapName(name);
  await qmp.execute('block-dirty-bitmap-clear', { node, name });
}

/** A bitmap by name on the target's node, or by node and name (QEMU merges across nodes of the same size). */
export type BitmapRef = string | { node: string; name: string };

/** ORs `sources` into `node`'s bitmap `target`. */
export async function mergeDirtyBitmaps(qmp: QmpClient, node: string, target: string, sources: BitmapRef[]): Promise<void> {
  checkBitmapName(target);
  await qmp.execute('block-dirty-bitmap-merge', { node, target, bitmaps: sources });
}

/** The node's dirty bitmaps. NotFoundError for an unknown node. */
export async function listDirtyBitmaps(qmp: QmpClient, node: string): Promise<DirtyBitmapState[]> {
  return (await findBlockNode(qmp, node)).dirtyBitmaps;
}

export interface ReadBitmapOptions {
  node: string;
  name: string;
  /** The QEMU's NBD server socket (started if need be). */
  socketPath: string;
  logger?: Logger;
}

/**
 * Reads a dirty bitmap as one bit per 64 KiB block (bit b & 31 of word b >>> 5), through an NBD export of its
 * node with the bitmap as meta context `qemu:dirty-bitmap:NAME`: block status flag 1 marks dirty ranges. A
 * bitmap still recording on a writable node is first copied (a disabled temporary bitmap, in one transaction)
 * and the copy is read: QEMU exports only bitmaps that cannot change under the reader. A coarser bitmap than
 * 64 KiB marks every block its dirty ranges touch.
 */
export async function readDirtyBitmap(qmp: QmpClient, opts: ReadBitmapOptions): Promise<Uint32Array> {
  checkBitmapName(opts.name);
  const log = (opts.logger ?? silentLogger()).child({ component: 'dirty-bitmap', node: opts.node, bitmap: opts.name });
  const node = await findBlockNode(qmp, opts.node);
  const state = node.dirtyBitmaps.find((b) => b.name === opts.name);
  if (!state) throw new NotFoundError(`block node ${opts.node} has no dirty bitmap ${opts.name}`);
  if (state.inconsistent) throw new FailedPreconditionError(`dirty bitmap ${opts.name} of ${opts.node} is inconsistent (its image was not closed cleanly)`);
  let name = opts.name;
  let tmp: string | null = null;
  if (state.recording && !node.readOnly) {
    tmp = `doppel-read-${process.pid}-${++tmpCounter}`;
    await qmp.execute('transaction', {
      actions: [
        { type: 'block-dirty-bitmap-add', data: bitmapAddArgs(opts.node, tmp, { persistent: false, disabled: true, granularity: state.granularity }) },
        { type: 'block-dirty-bitmap-merge', data: { node: opts.node, target: tmp, bitmaps: [opts.name] } },
      ],
    });
    name = tmp;
  }
  try {
    const exp = await exportNode(qmp, { node: opts.node, socketPath: opts.socketPath, bitmaps: [name] });
    try {
      const context = `qemu:dirty-bitmap:${name}`;
      const client = await NbdClient.connect({ socketPath: exp.socketPath, exportName: exp.name, metaContexts: [context] });
      try {
        const bits = new Uint32Array(bitmapWords(Math.ceil(client.size / DISK_BLOCK_SIZE)));
        let dirty = 0;
        for (const e of await client.blockStatus(context, 0, client.size)) {
          if ((e.flags & NBD_STATE_DIRTY) === 0) continue;
          setBlockRange(bits, e.offset, e.length);
          dirty += e.length;
        }
        log.debug({ dirtyBytes: dirty, count: state.count }, 'dirty bitmap read');
        return bits;
      } finally {
        await client.close();
      }
    } finally {
      await exp.close();
    }
  } finally {
    if (tmp) await qmp.execute('block-dirty-bitmap-remove', { node: opts.node, name: tmp });
  }
}

/**
 * Sets the bits of `blocks` (one bit per 64 KiB block) in a node's bitmap, for changes that did not come from
 * the guest. QMP has no "set bits" command, so the bits are made by real writes: write-zeroes over NBD to a
 * scratch `null-co` node (it stores nothing) whose temporary bitmap records them, merged into the target.
 */
export async function markDirty(qmp: QmpClient, opts: { node: string; name: string; blocks: Uint32Array; socketPath: string }): Promise<void> {
  checkBitmapName(opts.name);
  const node = await findBlockNode(qmp, opts.node);
  const state = node.dirtyBitmaps.find((b) => b.name === opts.name);
  if (!state) throw new NotFoundError(`block node ${opts.node} has no dirty bitmap ${opts.name}`);
  const blockCount = Math.ceil(node.virtualSize / DISK_BLOCK_SIZE);
  if (opts.blocks.length !== bitmapWords(blockCount)) {
    throw new InvalidArgumentError(`a bitmap of ${opts.blocks.length} words for ${opts.node}, which has ${blockCount} blocks (${bitmapWords(blockCount)} words)`);
  }
  if (!opts.blocks.some((w) => w !== 0)) return;
  const scratch = `doppel-mark-${++tmpCounter}`;
  const tmp = 'doppel-mark';
  await qmp.execute('blockdev-add', { driver: 'null-co', 'node-name': scratch, size: node.virtualSize });
  try {
    await addDirtyBitmap(qmp, scratch, tmp, { persistent: false, granularity: state.granularity });
    const exp = await exportNode(qmp, { node: scratch, socketPath: opts.socketPath, writable: true });
    try {
      const client = await NbdClient.connect({ socketPath: exp.socketPath, exportName: exp.name });
      try {
        const writes: Promise<void>[] = [];
        for (let b = 0; b < blockCount; ) {
          if (((opts.blocks[b >>> 5]! >>> (b & 31)) & 1) === 0) {
            b++;
            continue;
          }
          const start = b;
          while (b < blockCount && ((opts.blocks[b >>> 5]! >>> (b & 31)) & 1) === 1) b++;
          const offset = start * DISK_BLOCK_SIZE;
          writes.push(client.writeZeroes(offset, Math.min(b * DISK_BLOCK_SIZE, node.virtualSize) - offset));
        }
        await Promise.all(writes);
      } finally {
        await client.close();
      }
    } finally {
      await exp.close();
    }
    await mergeDirtyBitmaps(qmp, opts.node, opts.name, [{ node: scratch, name: tmp }]);
  } finally {
    await deleteNode(qmp, scratch);
  }
}

/** The disk's tracking bitmap now: the checkpoint it is relative to, or null when tracking is lost. */
export interface TrackingState {
  since: string | null;
  /** Inconsistent doppel bitmaps found (an unclean stop); snapshotWithCheckpoint removes them. */
  inconsistent: string[];
}

/** What the active node's doppel bitmaps say: exactly one usable tracking bitmap, or tracking is lost. */
export function trackingState(bitmaps: DirtyBitmapState[]): TrackingState {
  const ours = bitmaps.filter((b) => cbtSince(b.name) !== null);
  const usable = ours.filter((b) => !b.inconsistent && b.recording && b.persistent && b.granularity === CBT_GRANULARITY);
  return { since: usable.length === 1 ? cbtSince(usable[0]!.name) : null, inconsistent: ours.filter((b) => b.inconsistent).map((b) => b.name) };
}

/** Starts change tracking on a disk's active node (at its creation: changes since ''). */
export async function startChangeTracking(qmp: QmpClient, node: string, since = ''): Promise<void> {
  const state = trackingState(await listDirtyBitmaps(qmp, node));
  if (state.since !== null) throw new FailedPreconditionError(`block node ${node} already tracks changes since ${JSON.stringify(state.since)}`);
  await addDirtyBitmap(qmp, node, cbtBitmapName(since));
}

/** An external snapshot that opened a checkpoint. */
export interface CheckpointSnapshot {
  snapshot: ExternalSnapshot;
  checkpoint: string;
  /** The committed checkpoint the snapshot's changes are relative to; null when tracking was lost. */
  since: string | null;
  /** The frozen bitmap in the base (`snapshot.node`) holding the changes; null when tracking was lost. */
  baseBitmap: string | null;
  /** The bitmap started on the overlay: `doppel-cbt@<checkpoint>`. */
  overlayBitmap: string;
  /** Set once endCheckpoint ran. */
  ended: SnapshotOutcome | null;
}

/**
 * An external snapshot that also opens checkpoint `checkpoint`: a tracking bitmap for it starts on the overlay in
 * the snapshot's transaction. Pass `prepared` (prepareExternalSnapshot, done before the suspended window) to keep
 * the window down to the transaction; without it the overlay is prepared here. Inconsistent doppel bitmaps on
 * the node are removed first.
 */
export async function snapshotWithCheckpoint(
  qmp: QmpClient,
  opts: ExternalSnapshotOptions & { checkpoint: string; prepared?: PreparedSnapshot },
): Promise<CheckpointSnapshot> {
  checkCheckpoint(opts.checkpoint, false);
  if (opts.prepared && (opts.prepared.node !== opts.node || opts.prepared.overlayNode !== opts.overlayNode)) {
    throw new InvalidArgumentError(`the prepared snapshot is of ${opts.prepared.node} onto ${opts.prepared.overlayNode}, not ${opts.node} onto ${opts.overlayNode}`);
  }
  const node = await findBlockNode(qmp, opts.node);
  const state = trackingState(node.dirtyBitmaps);
  for (const name of state.inconsistent) await qmp.execute('block-dirty-bitmap-remove', { node: opts.node, name });
  const overlayBitmap = cbtBitmapName(opts.checkpoint);
  const prepared = opts.prepared ?? (await prepareExternalSnapshot(qmp, opts));
  const snapshot = await prepared.commit([{ type: 'block-dirty-bitmap-add', data: bitmapAddArgs(opts.overlayNode, overlayBitmap) }]);
  return {
    snapshot,
    checkpoint: opts.checkpoint,
    since: state.since,
    baseBitmap: state.since === null ? null : cbtBitmapName(state.since),
    overlayBitmap,
    ended: null,
  };
}

/** One disk of a snapshot taken over several disks at once. */
export interface DiskSetMember {
  /** The disk's active node. */
  node: string;
  overlayPath: string;
  overlayNode: string;
  backingHeaderName?: string;
}

/** Several disks snapshotted in one transaction. */
export interface DiskSetSnapshot {
  /** Per disk, in order. */
  snapshots: ExternalSnapshot[];
  /** With a checkpoint: per disk, in order; without one: empty. */
  checkpoints: CheckpointSnapshot[];
  transactionMs: number;
}

/** prepareSnapshotWithCheckpoint: the overlays exist; commit() is the transaction. */
export interface PreparedDiskSetSnapshot {
  /** Each disk's tracking before the snapshot (null: lost), in order. */
  readonly since: readonly (string | null)[];
  /** The one transaction: every disk onto its overlay, each overlay's bitmap started. Idempotent. */
  commit(): Promise<DiskSetSnapshot>;
  /** Deletes the overlays (before commit). Idempotent. */
  cancel(): Promise<void>;
}

/**
 * snapshotWithCheckpoint over several disks, split for a paused window: this prepares every overlay (image created,
 * node added, unattached) and drops inconsistent doppel bitmaps; commit() then runs one `transaction` that freezes
 * every disk at the same instant and starts each overlay's tracking bitmap. With `checkpoint` each overlay starts
 * `doppel-cbt@<checkpoint>` (as snapshotWithCheckpoint); without one, the overlay starts the disk's running
 * tracking bitmap again (`doppel-cbt@<since>`), so tracking goes on across the snapshot (the fold merges the two
 * halves). On any failure nothing is left behind.
 */
export async function prepareSnapshotWithCheckpoint(
  qmp: QmpClient,
  opts: { disks: readonly DiskSetMember[]; checkpoint?: string; logger?: Logger },
): Promise<PreparedDiskSetSnapshot> {
  const checkpoint = opts.checkpoint;
  if (checkpoint !== undefined) checkCheckpoint(checkpoint, false);
  if (opts.disks.length === 0) throw new InvalidArgumentError('a disk-set snapshot needs at least one disk');
  const log = opts.logger ?? silentLogger();
  let nodes = await queryBlockNodes(qmp);
  const nodeOf = (name: string): BlockNode => {
    const n = nodes.find((x) => x.nodeName === name);
    if (!n) throw new NotFoundError(`QEMU at ${qmp.socketPath} has no block node ${name} to snapshot`);
    return n;
  };
  for (const d of opts.disks) {
    for (const name of trackingState(nodeOf(d.node).dirtyBitmaps).inconsistent) await qmp.execute('block-dirty-bitmap-remove', { node: d.node, name });
  }
  nodes = await queryBlockNodes(qmp);
  const bases = opts.disks.map((d) => nodeOf(d.node));
  const since = bases.map((b) => trackingState(b.dirtyBitmaps).since);
  const overlayBitmap = (i: number): JsonObject[] => {
    const d = opts.disks[i]!;
    const name = checkpoint !== undefined ? cbtBitmapName(checkpoint) : since[i] !== null && since[i] !== undefined ? cbtBitmapName(since[i]) : null;
    return name === null ? [] : [{ type: 'block-dirty-bitmap-add', data: bitmapAddArgs(d.overlayNode, name) }];
  };
  const prepared: PreparedSnapshot[] = [];
  const cancel = async (): Promise<void> => {
    for (const p of prepared) await p.cancel().catch((e: unknown) => log.warn({ err: e }, 'could not undo a prepared snapshot'));
  };
  let lead: PreparedSnapshot;
  try {
    // The other disks first: the lead's transaction names their overlays.
    const others: JsonObject[] = [];
    for (const [i, d] of opts.disks.entries()) {
      if (i === 0) continue;
      prepared.push(await prepareExternalSnapshot(qmp, { ...d, logger: log }));
      others.push({ type: 'blockdev-snapshot', data: { node: d.node, overlay: d.overlayNode } }, ...overlayBitmap(i));
    }
    lead = await prepareExternalSnapshot(qmp, { ...opts.disks[0]!, extraActions: others, logger: log });
    prepared.push(lead);
  } catch (err) {
    await cancel();
    throw err;
  }
  let result: DiskSetSnapshot | null = null;
  return {
    since,
    cancel: async () => {
      if (!result) await cancel();
    },
    async commit(): Promise<DiskSetSnapshot> {
      if (result) return result;
      let leadSnap: ExternalSnapshot;
      try {
        leadSnap = await lead.commit(overlayBitmap(0));
      } catch (err) {
        // The transaction is all or nothing: no overlay is in use; the prepared ones go.
        await cancel();
        throw err;
      }
      const snapshots = opts.disks.map((d, i): ExternalSnapshot => {
        if (i === 0) return leadSnap;
        const b = bases[i]!;
        return { node: d.node, overlayNode: d.overlayNode, overlayPath: d.overlayPath, basePath: b.filename, baseFormat: b.driver === 'raw' ? 'raw' : 'qcow2', sizeBytes: b.virtualSize, transactionMs: leadSnap.transactionMs };
      });
      const checkpoints: CheckpointSnapshot[] =
        checkpoint === undefined
          ? []
          : snapshots.map((snapshot, i) => {
              const s = since[i] ?? null;
              return { snapshot, checkpoint, since: s, baseBitmap: s === null ? null : cbtBitmapName(s), overlayBitmap: cbtBitmapName(checkpoint), ended: null };
            });
      result = { snapshots, checkpoints, transactionMs: leadSnap.transactionMs };
      return result;
    },
  };
}

/** prepareSnapshotWithCheckpoint and its commit in one go (a window that includes making the overlays). */
export async function snapshotDisksWithCheckpoint(qmp: QmpClient, opts: { disks: readonly DiskSetMember[]; checkpoint?: string; logger?: Logger }): Promise<DiskSetSnapshot> {
  return (await prepareSnapshotWithCheckpoint(qmp, opts)).commit();
}

/** The snapshot's changes since the last committed checkpoint (null when tracking was lost). */
export async function readCheckpointChanges(qmp: QmpClient, cs: CheckpointSnapshot, socketPath: string): Promise<BlockChanges | null> {
  if (cs.since === null || cs.baseBitmap === null) return null;
  const bitmap = await readDirtyBitmap(qmp, { node: cs.snapshot.node, name: cs.baseBitmap, socketPath });
  return { since: cs.since, bitmap };
}

/**
 * Ends the checkpoint (idempotent): see the module comment. With 'commit', `alsoChanged` blocks are marked dirty
 * in the new tracking bitmap (needs `socketPath`), and `null` drops tracking.
 */
export async function endCheckpoint(
  qmp: QmpClient,
  cs: CheckpointSnapshot,
  outcome: SnapshotOutcome,
  opts: { alsoChanged?: Uint32Array | null; socketPath?: string } = {},
): Promise<void> {
  if (cs.ended) return;
  const overlay = cs.snapshot.overlayNode;
  if (outcome === 'commit') {
    if (opts.alsoChanged === null) {
      await removeDirtyBitmap(qmp, overlay, cs.overlayBitmap);
    } else if (opts.alsoChanged) {
      if (!opts.socketPath) throw new InvalidArgumentError('endCheckpoint: alsoChanged needs the NBD socket path');
      await markDirty(qmp, { node: overlay, name: cs.overlayBitmap, blocks: opts.alsoChanged, socketPath: opts.socketPath });
    }
  } else if (outcome === 'abort' && cs.baseBitmap !== null) {
    const name = cs.baseBitmap;
    await qmp.execute('transaction', {
      actions: [
        { type: 'block-dirty-bitmap-add', data: bitmapAddArgs(overlay, name) },
        { type: 'block-dirty-bitmap-merge', data: { node: overlay, target: name, bitmaps: [{ node: cs.snapshot.node, name }, cs.overlayBitmap] } },
        { type: 'block-dirty-bitmap-remove', data: { node: overlay, name: cs.overlayBitmap } },
      ],
    });
  } else {
    // invalidate, or abort with tracking already lost: no tracking bitmap on the active layer.
    await removeDirtyBitmap(qmp, overlay, cs.overlayBitmap);
  }
  cs.ended = outcome;
}

/**
 * For commitOverlay's `beforeComplete`: carries the top's doppel tracking bitmaps into the base and drops the
 * base's obsolete ones, in one transaction (see the module comment).
 */
export async function carryBitmapsOnCommit(qmp: QmpClient, layers: { top: string; base: string }): Promise<void> {
  const nodes = await queryBlockNodes(qmp);
  const top = nodes.find((n) => n.nodeName === layers.top);
  const base = nodes.find((n) => n.nodeName === layers.base);
  if (!top || !base) throw new NotFoundError(`carrying bitmaps from ${layers.top} into ${layers.base}: a node is missing`);
  const carried = top.dirtyBitmaps.filter((b) => cbtSince(b.name) !== null && !b.inconsistent);
  const actions: JsonObject[] = [];
  for (const b of carried) {
    const there = base.dirtyBitmaps.find((x) => x.name === b.name);
    if (there && (there.inconsistent || there.granularity !== b.granularity)) {
      actions.push({ type: 'block-dirty-bitmap-remove', data: { node: layers.base, name: b.name } });
    }
    if (!there || there.inconsistent || there.granularity !== b.granularity) {
      actions.push({ type: 'block-dirty-bitmap-add', data: bitmapAddArgs(layers.base, b.name, { granularity: b.granularity, persistent: b.persistent, disabled: !b.recording }) });
    }
    actions.push({ type: 'block-dirty-bitmap-merge', data: { node: layers.base, target: b.name, bitmaps: [{ node: layers.top, name: b.name }] } });
  }
  for (const b of base.dirtyBitmaps) {
    if (cbtSince(b.name) !== null && !carried.some((c) => c.name === b.name)) actions.push({ type: 'block-dirty-bitmap-remove', data: { node: layers.base, name: b.name } });
  }
  if (actions.length > 0) await qmp.execute('transaction', { actions });
}
