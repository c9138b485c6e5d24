/** Tables, JSON and a progress line for the CLI. */

/** A text table; the columns are the first row's keys, in order. */
export function table(rows: Record<string, string | number>[]): string {
  const first = rows[0];
  if (!first) return '(none)';
  const columns = Object.keys(first);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...rows.map((r) => line(columns.map((c) => String(r[c] ?? ''))))].join('\n');
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + '\n');
}

export function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** A one-line progress display, redrawn in place; silent when stderr is not a TTY. */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private last = '';

  update(text: string, fraction?: number): void {
    if (!this.tty) return;
    const width = 24;
    const bar =
      fraction === undefined
        ? ''
        : `[${'#'.repeat(Math.round(Math.min(1, Math.max(0, fraction)) * width)).padEnd(width, '.')}] `;
    const line = `${bar}${text}`.slice(0, (process.stderr.columns || 100) - 1);
    process.stderr.write(`\r${line.padEnd(this.last.length)}`);
    this.last = line;
  }

  done(): void {
    if (this.tty && this.last) process.stderr.write('\n');
    this.last = '';
  }
}
