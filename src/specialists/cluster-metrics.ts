/**
 * Agreement between two partitions of the same items: the adjusted Rand index (Hubert & Arabie
 * 1985). 1 for identical partitions (up to relabelling), about 0 for independent random ones.
 */

/**
 * Adjusted Rand index of two labelings of the same n items.
 * @param a cluster label per item (any integers)
 * @param b cluster label per item (same length as `a`)
 */
export function adjustedRandIndex(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  if (b.length !== n) throw new RangeError(`adjustedRandIndex: labelings differ in length (${n} vs ${b.length})`);
  if (n < 2) return 1;
  const table = new Map<string, number>();
  const ra = new Map<number, number>();
  const rb = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const key = `${a[i]},${b[i]}`;
    table.set(key, (table.get(key) ?? 0) + 1);
    ra.set(a[i], (ra.get(a[i]) ?? 0) + 1);
    rb.set(b[i], (rb.get(b[i]) ?? 0) + 1);
  }
  const c2 = (x: number): number => (x * (x - 1)) / 2;
  let index = 0;
  for (const v of table.values()) index += c2(v);
  let sa = 0;
  for (const v of ra.values()) sa += c2(v);
  let sb = 0;
  for (const v of rb.values()) sb += c2(v);
  const expected = (sa * sb) / c2(n);
  const max = (sa + sb) / 2;
  if (max === expected) return 1; // both trivial partitions
  return (index - expected) / (max - expected);
}
