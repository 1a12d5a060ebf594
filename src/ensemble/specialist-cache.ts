import type * as tf from '@tensorflow/tfjs';

/**
 * Keeps loaded specialists across blocks of cases, up to a budget of weight bytes: the ensemble
 * streams a split in blocks and each block needs the specialists active in it, so without a cache
 * every specialist would be read from disk and rebuilt once per block. A specialist that does
 * not fit the budget is loaded for its block and disposed after it (the old behaviour).
 */
export class SpecialistCache {
  private readonly kept = new Map<number, tf.LayersModel>();
  private bytes = 0;
  /** Loads from disk so far (a specialist kept loaded counts once). */
  loads = 0;

  /**
   * @param load reads specialist m from disk
   * @param budgetBytes the most weight bytes kept loaded (0: keep none)
   */
  constructor(
    private readonly load: (m: number) => Promise<tf.LayersModel>,
    readonly budgetBytes: number,
  ) {}

  /** Specialist m, from the cache or loaded. */
  async get(m: number): Promise<tf.LayersModel> {
    const hit = this.kept.get(m);
    if (hit) return hit;
    this.loads++;
    return this.load(m);
  }

  /** Hands a model back after use: kept while the budget allows, else disposed. */
  release(m: number, model: tf.LayersModel): void {
    if (this.kept.get(m) === model) return;
    const size = weightBytes(model);
    if (this.bytes + size <= this.budgetBytes) {
      this.kept.set(m, model);
      this.bytes += size;
    } else model.dispose();
  }

  /** Weight bytes kept loaded now. */
  get keptBytes(): number {
    return this.bytes;
  }

  /** Disposes every kept model. */
  dispose(): void {
    for (const model of this.kept.values()) model.dispose();
    this.kept.clear();
    this.bytes = 0;
  }
}

/** Bytes of a model's weights (4 per parameter: float32). */
export function weightBytes(model: tf.LayersModel): number {
  let n = 0;
  for (const w of model.weights) n += w.shape.reduce((a: number, b) => a * (b ?? 1), 1);
  return n * 4;
}
