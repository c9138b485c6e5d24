import { randomBytes } from 'node:crypto';

/** Short, sortable-enough ids: a prefix, the time in base 36, and random bits. */
export function newId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}
