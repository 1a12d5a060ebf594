import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { interleaveWithPeer } from '../../bench/peers/torch.ts';
import type { BenchCase } from '../../bench/types.ts';

describe('bench registry', () => {
  it('every bench/cases/*.ts exports a named benchCase with a run function, names unique', async () => {
    const dir = path.resolve(import.meta.dirname, '..', '..', 'bench', 'cases');
    const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    const names = new Set<string>();
    for (const f of files) {
      const mod = (await import(path.join(dir, f))) as { benchCase?: BenchCase };
      expect(typeof mod.benchCase?.name, f).toBe('string');
      expect(typeof mod.benchCase?.run, f).toBe('function');
      expect(names.has(mod.benchCase!.name), `duplicate name ${mod.benchCase!.name}`).toBe(false);
      names.add(mod.benchCase!.name);
    }
    expect(names).toContain('mlp-train');
    expect(names).toContain('mlp-infer');
  });

  it('interleaves windows with peer runs and keeps the best and median of each', async () => {
    const ours = [3, 9, 5, 7];
    const theirs = [100, 300, 200, 250];
    const order: string[] = [];
    let i = 0;
    let j = 0;
    const r = await interleaveWithPeer(4, () => (order.push('us'), ours[i++]!), () => (order.push('peer'), { version: 'x', threads: 1, examples_per_s: theirs[j++]! }), true);
    // The peer only runs when torch is importable here; our windows run either way.
    expect(r.best).toBe(9);
    expect(r.median).toBe(5);
    if (r.peer) {
      expect(r.peer.examples_per_s).toBe(300);
      expect(order).toEqual(['us', 'peer', 'us', 'peer', 'us', 'peer', 'us', 'peer']);
    }
    const noPeer = await interleaveWithPeer(2, () => 1, () => { throw new Error('must not run'); }, false);
    expect(noPeer.peer).toBeUndefined();
  });
});
