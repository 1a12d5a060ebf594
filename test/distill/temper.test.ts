import { describe, expect, it } from 'vitest';
import { meanTemperedEntropy, temperatureForEntropy, temperLogits, temperProbabilities } from '../../src/distill/temper.ts';

const entropy = (p: number[]): number => -p.reduce((s, v) => (v > 0 ? s + v * Math.log(v) : s), 0);

describe('tempering teacher targets', () => {
  it('p^(1/tau) renormalised, by hand: [0.5, 0.25, 0.25] at tau 0.5 is [2/3, 1/6, 1/6]', () => {
    const p = Float32Array.from([0.5, 0.25, 0.25, 0.1, 0.6, 0.3]);
    temperProbabilities(p, 3, 0.5);
    const second = [0.01, 0.36, 0.09].map((v) => v / 0.46);
    [2 / 3, 1 / 6, 1 / 6, ...second].forEach((v, i) => expect(p[i]).toBeCloseTo(v, 6));
  });

  it('tau 2 softens ([0.64, 0.36] -> [0.8, 0.6] renormalised), tau 1 changes nothing, zeros stay zero', () => {
    const p = Float32Array.from([0.64, 0.36]);
    temperProbabilities(p, 2, 2);
    expect(p[0]).toBeCloseTo(0.8 / 1.4, 6);
    expect(p[1]).toBeCloseTo(0.6 / 1.4, 6);
    const q = Float32Array.from([0.7, 0, 0.3]);
    const copy = Float32Array.from(q);
    temperProbabilities(q, 3, 1);
    expect([...q]).toEqual([...copy]);
    temperProbabilities(q, 3, 0.25);
    expect(q[1]).toBe(0);
    expect(q[0]! + q[2]!).toBeCloseTo(1, 6);
  });

  it('a small tau does not underflow: the argmax takes almost everything, the row still sums to 1', () => {
    const p = Float32Array.from([1e-8, 0.4, 0.6 - 1e-8]);
    temperProbabilities(p, 3, 0.01);
    expect(p[2]).toBeCloseTo(1, 6);
    expect(p[0]! + p[1]! + p[2]!).toBeCloseTo(1, 6);
    expect(Number.isFinite(p[0]!)).toBe(true);
  });

  it('logits are divided by tau; a bad tau is refused', () => {
    const v = Float32Array.from([2, -1, 0.5]);
    temperLogits(v, 0.5);
    expect([...v]).toEqual([4, -2, 1]);
    expect(() => temperLogits(v, 0)).toThrow(/teacher_temperature: temperature T must be a finite number > 0/);
    expect(() => temperProbabilities(Float32Array.from([1]), 1, Number.NaN)).toThrow(/teacher_temperature: temperature T must be a finite number > 0/);
  });

  it('mean tempered entropy matches the entropy of the tempered rows, over chosen rows', () => {
    const rows = [0.5, 0.25, 0.25, 0.9, 0.05, 0.05, 1 / 3, 1 / 3, 1 / 3];
    const p = Float32Array.from(rows);
    const t = Float32Array.from(rows);
    temperProbabilities(t, 3, 0.7);
    const each = [0, 1, 2].map((r) => entropy([...t.subarray(r * 3, r * 3 + 3)]));
    expect(meanTemperedEntropy(p, 3, 0.7)).toBeCloseTo((each[0]! + each[1]! + each[2]!) / 3, 6);
    expect(meanTemperedEntropy(p, 3, 0.7, [2, 0])).toBeCloseTo((each[2]! + each[0]!) / 2, 6);
    expect(meanTemperedEntropy(p, 3, 1, [2])).toBeCloseTo(Math.log(3), 6);
  });

  it('temperatureForEntropy finds the tau that gives the target softness', () => {
    const p = Float32Array.from([0.5, 0.3, 0.2, 0.6, 0.3, 0.1]);
    const target = 0.6;
    const tau = temperatureForEntropy(p, 3, target);
    expect(tau).toBeLessThan(1);
    expect(meanTemperedEntropy(p, 3, tau)).toBeCloseTo(target, 5);
    expect(temperatureForEntropy(p, 3, meanTemperedEntropy(p, 3, 1))).toBeCloseTo(1, 4);
  });
});
