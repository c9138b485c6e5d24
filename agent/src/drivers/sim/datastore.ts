/**
 * The datastore: a directory, possibly mounted by several hosts, that holds
 * disk layers. Its id is created once, so hosts that mount the same directory
 * report the same id and know they share it.
 *
 * Each layer is `layers/<id>/` holding `data`, `alloc` and `refs/`, with one
 * file in `refs/` per VM (on any host) whose chain uses the layer. A layer goes
 * when its last reference does, so a shared base outlives the VM that froze it
 * for as long as a linked clone anywhere still uses it.
 *
 * A base that only its own VM still references can be taken back by that VM
 * (claimed) and written again: a merge folds the layers above into it. The claim
 * leaves a `private` marker in the layer, and a host adding a reference checks
 * for it after writing its reference file, while the claim re-reads the
 * references after writing the marker: each side writes first and looks second,
 * so of two racing at the same instant at least one sees the other and backs
 * off. A linked clone never gets a base that is being written.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, statfsSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { NotFoundError, newId } from '../../../../shared/src/mod.js';
import { ensureDatastoreId } from '../datastore-id.js';
import type { DatastoreInfo } from '../driver.js';
import { LAYER_ALLOC_FILE, LAYER_DATA_FILE, loadLayerDesc, type LayerDesc } from './layer-io.js';

const LAYER_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** In a layer's directory while its VM has taken it back from sharing (see claim()). */
const PRIVATE_MARKER = 'private';

export class Datastore {
  readonly info: DatastoreInfo;
  private readonly layersDir: string;

  constructor(readonly path: string) {
    this.layersDir = join(path, 'layers');
    mkdirSync(this.layersDir, { recursive: true });
    this.info = { id: ensureDatastoreId(path), path };
  }

  /** Throws unless `id` can name a layer (ids come over the network in linked clones). */
  static checkLayerId(id: string): void {
    if (!LAYER_ID.test(id)) throw new NotFoundError(`'${id}' is not a layer id`);
  }

  layerDir(id: string): string {
    Datastore.checkLayerId(id);
    return join(this.layersDir, id);
  }

  /**
   * Creates an empty layer of `sizeBytes`, referenced by `ref`. It is built under a temporary name and renamed
   * into place, so another host never sees a layer without its reference.
   */
  createLayer(sizeBytes: number, ref: string): string {
    const id = newId('layer');
    const tmp = join(this.layersDir, `.tmp-${id}`);
    mkdirSync(join(tmp, 'refs'), { recursive: true });
    try {
      writeFileSync(join(tmp, 'refs', ref), '');
      writeFileSync(join(tmp, LAYER_ALLOC_FILE), '');
      writeFileSync(join(tmp, LAYER_DATA_FILE), '');
      // Sparse: truncate extends with a hole, so the data file has the disk's size but no blocks yet.
      truncateSync(join(tmp, LAYER_DATA_FILE), sizeBytes);
      renameSync(tmp, this.layerDir(id));
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    return id;
  }

  /** Opens a layer's bitmaps, checking that it exists and has the disk's size. */
  openLayer(id: string, blockCount: number, blockSize: number): LayerDesc {
    const dir = this.layerDir(id);
    let size: number;
    try {
      size = statSync(join(dir, LAYER_DATA_FILE)).size;
    } catch (err) {
      throw new NotFoundError(`layer ${id} is not in datastore ${this.info.id}`, { cause: err });
    }
    if (size !== blockCount * blockSize) {
      throw new NotFoundError(`layer ${id} holds ${size} bytes, not the ${blockCount * blockSize} of this disk`);
    }
    return loadLayerDesc(id, dir, blockCount);
  }

  /**
   * Adds a reference; fails if the layer is gone (its last user dropped it meanwhile) or its VM took it back
   * (claim()): the reference is written first and the marker looked for second.
   */
  addRef(id: string, ref: string): void {
    const dir = this.layerDir(id);
    const file = join(dir, 'refs', ref);
    const had = existsSync(file);
    try {
      writeFileSync(file, '', { flag: 'w' });
    } catch (err) {
      throw new NotFoundError(`layer ${id} is not in datastore ${this.info.id}`, { cause: err });
    }
    if (existsSync(join(dir, PRIVATE_MARKER))) {
      if (!had) rmSync(file, { force: true });
      throw new NotFoundError(`layer ${id} is no longer a shared base: the VM that froze it took it back`);
    }
  }

  /**
   * Takes a frozen base back for `ref`, so that it may be written again: true when `ref` is its only reference,
   * and from then on no host can add one (addRef fails) until share(). The marker is written first and the
   * references read second, so a host linking a clone on the base at this instant is either seen here (the
   * claim fails) or sees the marker (its link fails). Idempotent.
   */
  claim(id: string, ref: string): boolean {
    if (!this.onlyRef(id, ref)) return false;
    const marker = join(this.layerDir(id), PRIVATE_MARKER);
    try {
      writeFileSync(marker, ref);
    } catch {
      return false;
    }
    if (this.onlyRef(id, ref)) return true;
    rmSync(marker, { force: true });
    return false;
  }

  /** The layer is a frozen base others may reference again (a shareable snapshot froze it): undoes claim(). */
  share(id: string): void {
    rmSync(join(this.layerDir(id), PRIVATE_MARKER), { force: true });
  }

  /** True while claim() holds the layer. */
  claimed(id: string): boolean {
    return existsSync(join(this.layerDir(id), PRIVATE_MARKER));
  }

  private onlyRef(id: string, ref: string): boolean {
    const refs = this.refs(id);
    return refs.length === 1 && refs[0] === ref;
  }

  /** Drops a reference and deletes the layer if it was the last one. Returns true when the layer went. */
  dropRef(id: string, ref: string): boolean {
    const dir = this.layerDir(id);
    rmSync(join(dir, 'refs', ref), { force: true });
    if (this.refs(id).length > 0 || !existsSync(dir)) return false;
    // Move it aside first: a host adding a reference now fails (the layer is gone) instead of keeping a half-deleted one.
    const trash = join(this.layersDir, `.trash-${id}-${randomBytes(4).toString('hex')}`);
    try {
      renameSync(dir, trash);
    } catch {
      return false;
    }
    if (readdirSync(join(trash, 'refs')).length > 0) {
      renameSync(trash, dir);
      return false;
    }
    rmSync(trash, { recursive: true, force: true });
    return true;
  }

  refs(id: string): string[] {
    try {
      return readdirSync(join(this.layerDir(id), 'refs'));
    } catch {
      return [];
    }
  }

  /**
   * Space in MiB: what the layers' data files take on disk (allocated blocks, so sparse files count what they
   * hold), and what the filesystem under the datastore has free.
   */
  space(): { usedMib: number; freeMib: number } {
    let used = 0;
    for (const id of this.layerIds()) {
      try {
        used += statSync(join(this.layersDir, id, LAYER_DATA_FILE)).blocks * 512;
      } catch {
        // Deleted while listed.
      }
    }
    const fs = statfsSync(this.path);
    return { usedMib: Math.ceil(used / 2 ** 20), freeMib: Math.floor((fs.bavail * fs.bsize) / 2 ** 20) };
  }

  /** Every layer id in the datastore (not the ones being created or deleted). */
  layerIds(): string[] {
    return readdirSync(this.layersDir).filter((n) => !n.startsWith('.'));
  }
}
