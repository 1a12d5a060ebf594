/**
 * The GB2312 character set in its standard order: level 1 (3,755 common characters, rows 16-55
 * of the code table, ordered by pinyin) then level 2 (3,008 characters, rows 56-87, ordered by
 * radical and stroke count). Decoded from the code table with the platform's GBK decoder, so no
 * table is shipped.
 */

/** Characters in GB2312 level 1. */
export const GB2312_LEVEL1 = 3755;
/** Characters in GB2312 levels 1 and 2. */
export const GB2312_ALL = 6763;

let cache: string[] | null = null;

/**
 * All 6,763 GB2312 hanzi in code order (level 1 first). Row 55 has 89 characters (its last five
 * cells are unassigned), every other row 94.
 *
 * @throws Error if this Node has no GBK decoder (built without full ICU).
 */
export function gb2312Characters(): string[] {
  if (cache) return cache;
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder('gbk', { fatal: true });
  } catch (e) {
    throw new Error('this Node.js has no GBK text decoder (it was built without full ICU); use the official Node.js build', { cause: e });
  }
  const out: string[] = [];
  for (let row = 16; row <= 87; row++) {
    const cells = row === 55 ? 89 : 94;
    for (let cell = 1; cell <= cells; cell++) out.push(decoder.decode(new Uint8Array([0xa0 + row, 0xa0 + cell])));
  }
  if (out.length !== GB2312_ALL) throw new Error(`GB2312 table decoded to ${out.length} characters, expected ${GB2312_ALL}`);
  cache = out;
  return out;
}
