/**
 * Glyphs recipe: printed Chinese characters (GB2312, up to 6,763 classes) rendered from the CJK
 * fonts Debian ships, with seeded augmentation. A real many-class task with real confusions
 * (characters that differ by one stroke), made here without any download.
 *
 * Each example is one character drawn white on black into a `size` x `size` grey image, centred
 * on its ink box, then moved, rotated and scaled at random, drawn with a random extra stroke
 * weight, blurred and given Gaussian pixel noise (all amounts seeded, per example). Splits:
 * - `iid`: every split draws its font uniformly from all fonts found;
 * - `font`: test rows all use one font (`testFont`, default the last one found) that train and
 *   valid never see: recognition of an unseen style.
 *
 * Output: `label: Utf8` (the character), `features: FixedSizeList<Uint8>[size*size]` (row-major
 * pixels), `split: Utf8`, `font: Utf8` (the font drawn; ingest ignores it), schema metadata `shape = [size, size, 1]`, `feature_scale = 1/255` (ingest
 * stores pixel / 255), `glyphs` (the options and the fonts used, JSON). Rows are written in record
 * batches as they are rendered, so memory is one batch whatever the class count.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Field, FixedSizeList, makeData, RecordBatch, Schema, Struct, Uint8, Utf8, type Data } from 'apache-arrow';
import { ArrowFileSink, utf8FromCodes } from '../src/data/arrow-write.ts';
import { DataError } from '../src/util/errors.ts';
import { silentLogger, type Logger } from '../src/util/log.ts';
import { Rng } from '../src/util/rng.ts';
import { gb2312Characters } from './gb2312.ts';

/** A CJK font file the recipe knows, by the Debian package that ships it. */
export interface KnownFont {
  /** Short name used in options (`testFont`, `fonts`) and in the file's metadata. */
  name: string;
  /** Debian package. */
  pkg: string;
  /** Candidate paths (the first that exists is used). */
  paths: string[];
}

/** The CJK fonts of Debian's font packages, in the order the recipe lists them. */
export const KNOWN_FONTS: readonly KnownFont[] = [
  { name: 'arphic-ukai', pkg: 'fonts-arphic-ukai', paths: ['/usr/share/fonts/truetype/arphic/ukai.ttc'] },
  { name: 'arphic-uming', pkg: 'fonts-arphic-uming', paths: ['/usr/share/fonts/truetype/arphic/uming.ttc'] },
  { name: 'droid-fallback', pkg: 'fonts-droid-fallback', paths: ['/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf'] },
  { name: 'noto-sans-cjk', pkg: 'fonts-noto-cjk', paths: ['/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc'] },
  { name: 'noto-serif-cjk', pkg: 'fonts-noto-cjk', paths: ['/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc'] },
  { name: 'wqy-microhei', pkg: 'fonts-wqy-microhei', paths: ['/usr/share/fonts/truetype/wqy/wqy-microhei.ttc'] },
  { name: 'wqy-zenhei', pkg: 'fonts-wqy-zenhei', paths: ['/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc'] },
];

/** A font found on this machine. */
export interface FoundFont {
  name: string;
  path: string;
}

/** Options of {@link makeGlyphs} (validated and defaulted by the recipe schema). */
export interface GlyphsOptions {
  /** Number of classes: the first `classes` GB2312 characters after `offset` (level 1 is the first 3,755). */
  classes: number;
  /** Index of the first character in GB2312 order (0 = the first level-1 character). */
  offset: number;
  /** Training rows per class. */
  perClass: number;
  /** Validation rows per class. */
  validPerClass: number;
  /** Test rows per class. */
  testPerClass: number;
  /**
   * Extra rows per class with split = 'unlabeled', rendered after the test rows in the training
   * fonts (an unlabelled transfer set: ingest ignores their labels). 0 or absent: none; the
   * labelled rows are the same either way.
   */
  unlabeledPerClass?: number;
  /** Image height and width in pixels. */
  size: number;
  /** `iid`: fonts drawn at random in every split; `font`: one font kept for test only. */
  split: 'iid' | 'font';
  /** The held-out font of the `font` split (default: the last font found). */
  testFont?: string;
  /** Use only these fonts (names of {@link KNOWN_FONTS}); default every one installed. */
  fonts?: string[];
  seed: number;
  /** Glyph height as a fraction of the image, drawn uniformly from [min, max]. */
  scale: [number, number];
  /** Largest shift of the glyph's centre, as a fraction of the image size (each axis, uniform). */
  shift: number;
  /** Largest rotation in degrees (uniform in [-rotation, rotation]). */
  rotation: number;
  /** Largest extra stroke width in pixels (uniform in [0, stroke]). */
  stroke: number;
  /** Largest Gaussian blur radius in pixels (uniform in [0, blur]). */
  blur: number;
  /** Standard deviation of the Gaussian pixel noise, in grey levels (0-255). */
  noise: number;
}

/** The subset of @napi-rs/canvas the recipe uses. */
interface CanvasApi {
  createCanvas(w: number, h: number): {
    getContext(kind: '2d'): Ctx2d;
  };
  GlobalFonts: { registerFromPath(path: string, alias?: string): unknown };
}
interface Ctx2d {
  fillStyle: string;
  strokeStyle: string;
  lineWidth: number;
  lineJoin: string;
  font: string;
  filter: string;
  textAlign: string;
  textBaseline: string;
  setTransform(a: number, b: number, c: number, d: number, e: number, f: number): void;
  fillRect(x: number, y: number, w: number, h: number): void;
  fillText(t: string, x: number, y: number): void;
  strokeText(t: string, x: number, y: number): void;
  measureText(t: string): { actualBoundingBoxLeft: number; actualBoundingBoxRight: number; actualBoundingBoxAscent: number; actualBoundingBoxDescent: number };
  getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
}

/** Loads @napi-rs/canvas, or explains how to install it. */
function loadCanvas(): CanvasApi {
  const require = createRequire(import.meta.url);
  try {
    return require('@napi-rs/canvas') as CanvasApi;
  } catch (e) {
    throw new DataError("dataset recipe 'glyphs' needs the npm package @napi-rs/canvas (its prebuilt binary ships in the package, no download): run npm install @napi-rs/canvas", { cause: e });
  }
}

/**
 * The known CJK fonts installed on this machine, optionally restricted to `only`.
 *
 * @throws DataError when none is installed (naming the Debian packages), or `only` names an unknown or missing font.
 */
export function findFonts(only?: readonly string[]): FoundFont[] {
  const found: FoundFont[] = [];
  for (const f of KNOWN_FONTS) {
    const p = f.paths.find((x) => existsSync(x));
    if (p) found.push({ name: f.name, path: p });
  }
  const pkgs = [...new Set(KNOWN_FONTS.map((f) => f.pkg))].join(' ');
  if (only) {
    for (const n of only) {
      const known = KNOWN_FONTS.find((f) => f.name === n);
      if (!known) throw new DataError(`glyphs: unknown font ${JSON.stringify(n)} in 'fonts'; known fonts are ${KNOWN_FONTS.map((f) => f.name).join(', ')}`);
      if (!found.some((f) => f.name === n)) throw new DataError(`glyphs: font ${n} is not installed (expected at ${known.paths.join(' or ')}); install it with apt-get install ${known.pkg}`);
    }
    return found.filter((f) => only.includes(f.name));
  }
  if (found.length === 0) throw new DataError(`glyphs: no CJK font found; install at least one with apt-get install ${pkgs} (any of them)`);
  return found;
}

/** Per-example augmentation draws, in a fixed order from the recipe's Rng. */
interface Draw {
  font: number;
  scale: number;
  dx: number;
  dy: number;
  angle: number;
  stroke: number;
  blur: number;
}

const SPLITS = ['train', 'valid', 'test', 'unlabeled'] as const;
const BATCH_ROWS = 4096;

/** The Arrow schema of a glyphs file. */
function glyphsSchema(size: number, meta: Record<string, unknown>): Schema {
  const metadata = new Map<string, string>([
    ['shape', JSON.stringify([size, size, 1])],
    ['feature_scale', '1/255'],
    ['glyphs', JSON.stringify(meta)],
  ]);
  return new Schema(
    [
      new Field('label', new Utf8(), false),
      new Field('features', new FixedSizeList(size * size, new Field('item', new Uint8(), false)), false),
      new Field('split', new Utf8(), false),
      new Field('font', new Utf8(), false),
    ],
    metadata,
  );
}

/**
 * Renders the glyphs dataset into an Arrow IPC file at `outFile` (atomically: a temp file renamed
 * into place when complete).
 *
 * @returns the characters used (class order of the file) and the fonts.
 * @throws DataError when the canvas package or fonts are missing, or the options select characters beyond GB2312.
 */
export async function makeGlyphs(outFile: string, o: GlyphsOptions, log: Logger = silentLogger): Promise<{ characters: string[]; fonts: FoundFont[]; testFont: string | null }> {
  const all = gb2312Characters();
  if (o.offset + o.classes > all.length) {
    throw new DataError(`glyphs: offset ${o.offset} + classes ${o.classes} = ${o.offset + o.classes} is beyond the ${all.length} GB2312 characters; lower classes or offset`);
  }
  const characters = all.slice(o.offset, o.offset + o.classes);
  const canvas = loadCanvas();
  const fonts = findFonts(o.fonts);
  let testFont: string | null = null;
  if (o.split === 'font') {
    if (fonts.length < 2) throw new DataError(`glyphs: split 'font' keeps one font for test and needs at least 2 installed fonts, found ${fonts.map((f) => f.name).join(', ')}; install another (apt-get install fonts-wqy-microhei fonts-droid-fallback) or use split 'iid'`);
    testFont = o.testFont ?? fonts[fonts.length - 1].name;
    if (!fonts.some((f) => f.name === testFont)) throw new DataError(`glyphs: testFont ${testFont} is not among the fonts used (${fonts.map((f) => f.name).join(', ')})`);
  } else if (o.testFont !== undefined) {
    throw new DataError("glyphs: testFont is only used with split 'font'; remove it or set split: font");
  }
  fonts.forEach((f, i) => canvas.GlobalFonts.registerFromPath(f.path, `glyphs-font-${i}`));
  log.info(`glyphs: ${characters.length} characters (${characters.slice(0, 8).join('')}...), fonts ${fonts.map((f) => f.name).join(', ')}${testFont ? `, test font ${testFont}` : ''}`);

  const S = o.size;
  const pad = S; // a tile is drawn in the middle of a 3S x 3S canvas so shifted/rotated glyphs never clip
  const W = 3 * S;
  const cv = canvas.createCanvas(W, W);
  const ctx = cv.getContext('2d');
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  ctx.lineJoin = 'round';
  const trainFonts = testFont === null ? fonts.map((_, i) => i) : fonts.map((_, i) => i).filter((i) => fonts[i].name !== testFont);
  const testFontIndex = testFont === null ? -1 : fonts.findIndex((f) => f.name === testFont);
  const rng = new Rng(o.seed);
  /** Ink box of a character in a font at 100 px, cached: its centre and height. */
  const boxes = new Map<string, { cx: number; cy: number; h: number; w: number }>();
  const box = (ch: string, font: number): { cx: number; cy: number; h: number; w: number } => {
    const key = `${font}:${ch}`;
    let b = boxes.get(key);
    if (!b) {
      ctx.filter = 'none';
      ctx.font = `100px "glyphs-font-${font}"`;
      const m = ctx.measureText(ch);
      const w = m.actualBoundingBoxLeft + m.actualBoundingBoxRight;
      const h = m.actualBoundingBoxAscent + m.actualBoundingBoxDescent;
      b = { cx: (m.actualBoundingBoxRight - m.actualBoundingBoxLeft) / 2, cy: (m.actualBoundingBoxDescent - m.actualBoundingBoxAscent) / 2, h: Math.max(h, 1), w: Math.max(w, 1) };
      boxes.set(key, b);
    }
    return b;
  };

  const meta = { ...o, fonts: fonts.map((f) => f.name), testFont, first: characters[0], last: characters[characters.length - 1] };
  const schema = glyphsSchema(S, meta);
  const perSplit = [o.perClass, o.validPerClass, o.testPerClass, o.unlabeledPerClass ?? 0];
  const total = characters.length * perSplit.reduce((a, b) => a + b, 0);
  const progress = log.progress('rendering glyphs', total);
  const sink = new ArrowFileSink(outFile, schema);
  const feat = new Uint8Array(BATCH_ROWS * S * S);
  const labelCodes = new Int32Array(BATCH_ROWS);
  const splitCodes = new Uint8Array(BATCH_ROWS);
  const fontCodes = new Uint8Array(BATCH_ROWS);
  const fontNames = fonts.map((f) => f.name);
  let n = 0;
  let written = 0;
  let blank = 0;
  const flush = (): void => {
    if (n === 0) return;
    const ftype = schema.fields[1].type as FixedSizeList<Uint8>;
    const children: Data[] = [
      utf8FromCodes(labelCodes, characters, n),
      makeData({ type: ftype, length: n, nullCount: 0, child: makeData({ type: new Uint8(), length: n * S * S, nullCount: 0, data: feat.slice(0, n * S * S) }) }),
      utf8FromCodes(splitCodes, SPLITS, n),
      utf8FromCodes(fontCodes, fontNames, n),
    ];
    // The pixel buffer is reused for the next batch, so the batch holds a copy (slice above).
    sink.write(new RecordBatch(schema, makeData({ type: new Struct(schema.fields), length: n, nullCount: 0, children })));
    progress.tick(n);
    written += n;
    n = 0;
  };
  const t0 = Date.now();
  try {
    for (let s = 0; s < perSplit.length; s++) {
      for (let e = 0; e < perSplit[s]; e++) {
        for (let c = 0; c < characters.length; c++) {
          const d = drawParams(rng, o, s === 2 && testFontIndex >= 0 ? [testFontIndex] : trainFonts);
          if (renderInto(ctx, characters[c], d, box(characters[c], d.font), S, pad, W, feat, n * S * S, rng, o.noise)) blank++;
          labelCodes[n] = c;
          splitCodes[n] = s;
          fontCodes[n] = d.font;
          n++;
          if (n === BATCH_ROWS) flush();
        }
      }
    }
    flush();
    progress.done(`${written} images in ${((Date.now() - t0) / 1000).toFixed(1)}s${blank ? `, ${blank} blank (a font without the character)` : ''}`);
    sink.finish();
  } catch (e) {
    sink.abort();
    throw e;
  }
  return { characters, fonts, testFont };
}

/** Draws one example's font and augmentation amounts. */
function drawParams(rng: Rng, o: GlyphsOptions, fontChoices: readonly number[]): Draw {
  const font = fontChoices[Math.floor(rng.next() * fontChoices.length)];
  const scale = o.scale[0] + (o.scale[1] - o.scale[0]) * rng.next();
  const dx = (2 * rng.next() - 1) * o.shift;
  const dy = (2 * rng.next() - 1) * o.shift;
  const angle = ((2 * rng.next() - 1) * o.rotation * Math.PI) / 180;
  const stroke = o.stroke * rng.next();
  const blur = o.blur * rng.next();
  return { font, scale, dx, dy, angle, stroke, blur };
}

/**
 * Renders one glyph and writes its S x S grey pixels (with noise) at `out[offset..]`.
 * @returns true when the glyph drew no ink (the font lacks the character).
 */
function renderInto(ctx: Ctx2d, ch: string, d: Draw, b: { cx: number; cy: number; h: number; w: number }, S: number, pad: number, W: number, out: Uint8Array, offset: number, rng: Rng, noise: number): boolean {
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.filter = 'none';
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, W, W);
  // Glyph height (ink box, the larger side) = scale * S; centred, then shifted and rotated.
  const px = (d.scale * S * 100) / Math.max(b.h, b.w);
  const k = px / 100;
  const cos = Math.cos(d.angle) * k;
  const sin = Math.sin(d.angle) * k;
  const tx = pad + S / 2 + d.dx * S;
  const ty = pad + S / 2 + d.dy * S;
  // Map glyph space (100 px font, origin at the pen) so that the ink centre lands on (tx, ty).
  ctx.setTransform(cos, sin, -sin, cos, tx - (cos * b.cx - sin * b.cy), ty - (sin * b.cx + cos * b.cy));
  ctx.filter = d.blur > 0.05 ? `blur(${d.blur.toFixed(3)}px)` : 'none';
  ctx.font = `100px "glyphs-font-${d.font}"`;
  ctx.fillStyle = '#fff';
  ctx.fillText(ch, 0, 0);
  if (d.stroke > 0.05) {
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = d.stroke / k; // in glyph space, so the stroke is d.stroke image pixels wide
    ctx.strokeText(ch, 0, 0);
  }
  const img = ctx.getImageData(pad, pad, S, S).data;
  let ink = 0;
  for (let i = 0; i < S * S; i++) {
    const v = img[4 * i];
    ink += v;
    const g = noise > 0 ? v + noise * rng.normal() : v;
    out[offset + i] = g <= 0 ? 0 : g >= 255 ? 255 : Math.round(g);
  }
  return ink === 0;
}

/** The default per-class split sizes and augmentation of the recipe (README and schema). */
export const GLYPHS_DEFAULTS = {
  classes: 3755,
  perClass: 100,
  validPerClass: 20,
  testPerClass: 20,
  size: 32,
  scale: [0.7, 0.95] as [number, number],
  shift: 0.06,
  rotation: 6,
  stroke: 1,
  blur: 0.6,
  noise: 10,
} as const;

