/**
 * The covariance heatmap's data: classes reordered so each cluster's classes are adjacent, and,
 * for many classes, the matrix shrunk to blocks so the page stays small.
 */

/** Classes in cluster order, and the span each cluster occupies in that order. */
export interface ClassOrder {
  /** `order[position]` = class index. Every class appears exactly once. */
  order: number[];
  /** Per cluster that placed at least one class: its classes occupy positions `[start, end)`. */
  blocks: { cluster: number; start: number; end: number }[];
  /** Classes that no cluster lists (placed last, no block). */
  unclustered: number;
}

/**
 * Orders the classes by cluster: the classes of cluster 0 first (in the cluster's order), then
 * those of cluster 1 not yet placed, and so on; classes no cluster lists come last. With
 * overlapping clusters a class sits in the first cluster that lists it, so each cluster's block
 * holds the classes it added.
 * @param clusters class indices per cluster; indices outside `0..C-1` are ignored
 */
export function orderByClusters(C: number, clusters: ReadonlyArray<ReadonlyArray<number>>): ClassOrder {
  const placed = new Uint8Array(C);
  const order: number[] = [];
  const blocks: ClassOrder['blocks'] = [];
  clusters.forEach((cl, cluster) => {
    const start = order.length;
    for (const c of cl) {
      if (Number.isInteger(c) && c >= 0 && c < C && !placed[c]) {
        placed[c] = 1;
        order.push(c);
      }
    }
    if (order.length > start) blocks.push({ cluster, start, end: order.length });
  });
  let unclustered = 0;
  for (let c = 0; c < C; c++) {
    if (!placed[c]) {
      order.push(c);
      unclustered++;
    }
  }
  return { order, blocks, unclustered };
}

/** A square grid of heatmap cells. */
export interface HeatmapGrid {
  /** Cells per side. */
  side: number;
  /** Classes per cell along each axis (1 = the full matrix; the last block may hold fewer). */
  blockSize: number;
  /** `side x side`, row-major, in cluster order. */
  values: Float32Array;
  /** `covariance`: signed entries; `mean-abs`: mean of |covariance| over each block. */
  kind: 'covariance' | 'mean-abs';
  /** Largest |value| off the diagonal (the colour scale's end; the diagonal may exceed it). */
  colorMax: number;
}

/** Options of {@link heatmapGrid}. */
export interface HeatmapGridOptions {
  /** Up to this many classes the full matrix is kept (default 200). */
  fullLimit?: number;
  /** Above `fullLimit`, at most this many blocks per side (default 100). */
  maxSide?: number;
}

/**
 * The reordered covariance as a grid: the full matrix (cell `[r][c]` = `cov[order[r]][order[c]]`)
 * for at most `fullLimit` classes, otherwise blocks of `ceil(C / maxSide)` classes per side
 * holding the mean of |cov| over the block's entries.
 * @param cov C x C row-major
 * @param order a permutation of `0..C-1` (e.g. from {@link orderByClusters})
 */
export function heatmapGrid(cov: Float32Array, C: number, order: ReadonlyArray<number>, opts: HeatmapGridOptions = {}): HeatmapGrid {
  if (cov.length !== C * C) throw new RangeError(`heatmapGrid: covariance has ${cov.length} values, expected ${C} x ${C}`);
  if (order.length !== C) throw new RangeError(`heatmapGrid: order has ${order.length} entries, expected ${C}`);
  const fullLimit = opts.fullLimit ?? 200;
  const maxSide = opts.maxSide ?? 100;
  if (C <= fullLimit) {
    const values = new Float32Array(C * C);
    let colorMax = 0;
    for (let r = 0; r < C; r++) {
      const row = order[r]! * C;
      for (let c = 0; c < C; c++) {
        const v = cov[row + order[c]!]!;
        values[r * C + c] = v;
        if (r !== c && Math.abs(v) > colorMax) colorMax = Math.abs(v);
      }
    }
    return { side: C, blockSize: 1, values, kind: 'covariance', colorMax: colorMax || maxAbs(values) || 1 };
  }
  const blockSize = Math.ceil(C / maxSide);
  const side = Math.ceil(C / blockSize);
  const sums = new Float64Array(side * side);
  const counts = new Float64Array(side * side);
  for (let r = 0; r < C; r++) {
    const row = order[r]! * C;
    const br = Math.floor(r / blockSize) * side;
    for (let c = 0; c < C; c++) {
      const k = br + Math.floor(c / blockSize);
      sums[k] += Math.abs(cov[row + order[c]!]!);
      counts[k]++;
    }
  }
  const values = new Float32Array(side * side);
  let colorMax = 0;
  for (let k = 0; k < values.length; k++) {
    values[k] = sums[k]! / counts[k]!;
    if (Math.floor(k / side) !== k % side && values[k]! > colorMax) colorMax = values[k]!;
  }
  return { side, blockSize, values, kind: 'mean-abs', colorMax: colorMax || maxAbs(values) || 1 };
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const v of a) if (Math.abs(v) > m) m = Math.abs(v);
  return m;
}

/** Values quantised to integers for a compact page: `value ~= q * scale / levels`. */
export interface Quantised {
  scale: number;
  levels: number;
  q: number[];
}

/**
 * Quantises values to integers in `-levels..levels` relative to the largest |value| (relative
 * error at most `0.5 / levels` of that maximum).
 */
export function quantise(values: ArrayLike<number>, levels = 999): Quantised {
  let scale = 0;
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]!) > scale) scale = Math.abs(values[i]!);
  const q = new Array<number>(values.length);
  for (let i = 0; i < values.length; i++) q[i] = scale > 0 ? Math.round((values[i]! / scale) * levels) : 0;
  return { scale, levels, q };
}
