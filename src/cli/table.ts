/**
 * Formats rows as an aligned text table: numbers right-aligned, text left-aligned, a header
 * underlined with dashes.
 */
export function formatTable(header: string[], rows: (string | number)[][]): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const numeric = header.map((_, j) => rows.length > 0 && rows.every((r) => typeof r[j] === 'number' || r[j] === '' || r[j] === undefined));
  const width = header.map((h, j) => Math.max(h.length, ...cells.map((r) => (r[j] ?? '').length)));
  const line = (r: string[]): string => r.map((c, j) => (numeric[j] ? (c ?? '').padStart(width[j]!) : (c ?? '').padEnd(width[j]!))).join('  ').trimEnd();
  return [line(header), width.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

/** A number for a table: integers as they are, others with up to 4 significant decimals. */
export function formatNumber(x: number): string {
  if (Number.isInteger(x)) return String(x);
  if (Math.abs(x) >= 100) return x.toFixed(1);
  return x.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
}

/** A fraction as a percentage with 2 decimals. */
export function pct(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '-' : `${(100 * x).toFixed(2)}%`;
}

/** A byte count in human units. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}
