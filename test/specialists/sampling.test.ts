import { describe, expect, it } from 'vitest';
import { halfHalfSampler, naturalSpecialFraction, oversamplingFactor, splitBySpecial } from '../../src/specialists/sampling.ts';
import { Rng } from '../../src/util/rng.ts';

/** 1000 labels over 10 classes; classes 0 and 1 are special (20% of the data). */
function labels(): Int32Array {
  const y = new Int32Array(1000);
  for (let i = 0; i < y.length; i++) y[i] = i % 10;
  return y;
}

describe('halfHalfSampler', () => {
  it('makes every batch half special, half rest', () => {
    const y = labels();
    const special = new Set([0, 1]);
    const sampler = halfHalfSampler(y, special);
    const order = sampler(0, new Rng(1));
    // default epoch size: #special / 0.5 = 400
    expect(order.length).toBe(400);
    for (const B of [2, 10, 32, 33]) {
      for (let s = 0; s + B <= order.length; s += B) {
        let k = 0;
        for (let i = s; i < s + B; i++) if (special.has(y[order[i]])) k++;
        expect(Math.abs(k - B / 2)).toBeLessThanOrEqual(1);
      }
    }
    // The special side (200 examples) is used without replacement: each exactly once.
    const seen = new Map<number, number>();
    for (const i of order) if (special.has(y[i])) seen.set(i, (seen.get(i) ?? 0) + 1);
    expect(seen.size).toBe(200);
    expect([...seen.values()].every((c) => c === 1)).toBe(true);
    // The rest: 200 distinct draws from the 800 others (no repeats within an epoch).
    const rest = [...order].filter((i) => !special.has(y[i]));
    expect(new Set(rest).size).toBe(200);
  });

  it('repeats a small side and honours specialFraction, epochSize and a boolean mask', () => {
    const y = labels();
    const mask = [true, false, false, false, false, false, false, false, false, false]; // 100 examples of class 0
    const sampler = halfHalfSampler(y, mask, { specialFraction: 0.25, epochSize: 1000 });
    const order = sampler(3, new Rng(2));
    expect(order.length).toBe(1000);
    const inside = [...order].filter((i) => y[i] === 0);
    expect(inside.length).toBe(250);
    // 250 draws from 100 examples: whole permutations, so every example 2 or 3 times.
    const counts = new Map<number, number>();
    for (const i of inside) counts.set(i, (counts.get(i) ?? 0) + 1);
    expect(counts.size).toBe(100);
    expect(Math.min(...counts.values())).toBeGreaterThanOrEqual(2);
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(3);
  });

  it('is repeatable from the seed and differs between seeds', () => {
    const y = labels();
    const s = halfHalfSampler(y, new Set([3]));
    expect(Array.from(s(0, new Rng(7)))).toEqual(Array.from(s(0, new Rng(7))));
    expect(Array.from(s(0, new Rng(7)))).not.toEqual(Array.from(s(0, new Rng(8))));
  });

  it('rejects an empty side and a bad fraction', () => {
    const y = labels();
    expect(() => halfHalfSampler(y, new Set([42]))).toThrow(/no training example/);
    expect(() => halfHalfSampler(y, new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]))).toThrow(/every training example/);
    expect(() => halfHalfSampler(y, new Set([0]), { specialFraction: 1 })).toThrow(/specialFraction/);
  });
});

describe('oversamplingFactor', () => {
  it('is the odds ratio (s/p)/((1-s)/(1-p)); 49 for a 1/50 subset at 50/50', () => {
    expect(oversamplingFactor(0.02, 0.5)).toBeCloseTo(49, 12);
    expect(oversamplingFactor(0.2, 0.5)).toBeCloseTo(4, 12);
    expect(oversamplingFactor(0.3, 0.3)).toBeCloseTo(1, 12);
    // (0.25/0.1) / (0.75/0.9) = 2.5 / 0.8333.. = 3
    expect(oversamplingFactor(0.1, 0.25)).toBeCloseTo(3, 12);
    expect(() => oversamplingFactor(0, 0.5)).toThrow();
  });

  it('log(factor) added to the dustbin logit turns the sampled posterior into the natural one', () => {
    // Closed form: a Bayes classifier on sampled data has posterior odds special:dustbin equal to
    // natural odds * factor; adding log(factor) to the dustbin logit divides them back.
    const p = 0.1;
    const s = 0.5;
    const f = oversamplingFactor(p, s);
    const likelihoodRatio = 2.7; // p(x | special) / p(x | rest) for some x
    const naturalOdds = (likelihoodRatio * p) / (1 - p);
    const sampledOdds = (likelihoodRatio * s) / (1 - s);
    // logits: special = log sampledOdds, dustbin = 0; corrected dustbin = log f
    const corrected = Math.exp(Math.log(sampledOdds) - Math.log(f));
    expect(corrected).toBeCloseTo(naturalOdds, 12);
  });

  it('natural fraction and split by special', () => {
    const y = labels();
    expect(naturalSpecialFraction(y, new Set([0, 1]))).toBeCloseTo(0.2, 12);
    const { inside, outside } = splitBySpecial(y, new Set([0]));
    expect(inside.length).toBe(100);
    expect(outside.length).toBe(900);
    expect(inside[1]).toBe(10);
  });
});
