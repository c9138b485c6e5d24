/** Hot-clone checks shared by the tests: guest memory as words, and a freeze's journal of buffered writes against it. */
import assert from 'node:assert/strict';
import type { DriverVm } from '../../agent/src/drivers/driver.js';

/** Memory words of a guest that does not write (parked or stopped): each 64-byte line starts with its write's counter. */
export function memoryWords(vm: DriverVm): Uint32Array {
  const pages = vm.pages();
  const out = new Uint32Array((pages.pageCount * pages.pageSize) / 4);
  const bytes = new Uint8Array(out.buffer);
  for (let i = 0; i < pages.pageCount; i++) bytes.set(pages.page(i), i * pages.pageSize);
  return out;
}

/**
 * Every journaled write (line, counter) is in memory: the line holds that write or a later one. Returns the lines
 * checked and how many hold exactly their last buffered write (not overwritten since).
 */
export function checkJournal(journal: Uint32Array, mem: Uint32Array): { lines: number; exact: number } {
  const last = new Map<number, number>();
  for (let i = 0; i < journal.length; i += 2) last.set(journal[i]!, journal[i + 1]!);
  let exact = 0;
  for (const [line, counter] of last) {
    const inMemory = mem[line * 16]!;
    assert.ok(inMemory >= counter, `line ${line}: memory holds write ${inMemory}, the buffer had write ${counter}`);
    if (inMemory === counter) exact++;
  }
  return { lines: last.size, exact };
}
