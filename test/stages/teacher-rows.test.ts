import { describe, expect, it } from 'vitest';
import { teacherRowsFor, type PreparedDistillation } from '../../pipeline/stages/distill.ts';

/**
 * Soft targets given as probabilities reach a probability-taking loss as they are: their
 * logarithms (an n x C copy: 1.2 GB for 300,000 rows of 1,000 classes) are made only for a loss
 * that wants logits.
 */
describe('teacherRowsFor', () => {
  const probabilities = { targets: Float32Array.from([0.25, 0.75]), kind: 'probabilities' as const };
  let made = 0;
  const prep = {
    teacher: {
      probabilities,
      logits: () => {
        made++;
        return { targets: Float32Array.from([Math.log(0.25), Math.log(0.75)]), kind: 'logits' as const };
      },
    },
  } as unknown as PreparedDistillation;

  it('gives the soft loss the probabilities without making the logits', () => {
    made = 0;
    expect(teacherRowsFor(prep, { type: 'soft', T: 2, alpha: 1 })).toBe(probabilities);
    expect(made).toBe(0);
  });

  it('makes the logits for the logit-matching loss, and nothing for the hard loss', () => {
    made = 0;
    expect(teacherRowsFor(prep, { type: 'hard' })).toBeNull();
    expect(made).toBe(0);
    const r = teacherRowsFor(prep, { type: 'logits', alpha: 1 });
    expect(r?.kind).toBe('logits');
    expect(r?.targets[1]).toBeCloseTo(Math.log(0.75), 6);
    expect(made).toBe(1);
  });
});
