import { describe, it, expect, afterAll } from 'vitest';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { RUN_MARKER } from '../../src/artifacts/run-folder.ts';
import os from 'node:os';
import path from 'node:path';
import { checkPayload } from '../../src/jobs/payload.ts';
import { parseQueueUrl } from '../../src/jobs/queue-url.ts';
import { parseConfig } from '../../pipeline/config.ts';
import { STAGES } from '../../pipeline/stages/index.ts';
import type { SpecialistJobParams } from '../../src/specialists/worker-specialist-job.ts';
import { modelConfigSchema } from '../../src/models/arch/index.ts';
import { trainingParamsSchema } from '../../pipeline/stages/student.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'payload-'));
const run = path.join(tmp, 'run');
mkdirSync(path.join(run, 'ingest'), { recursive: true });
mkdirSync(path.join(tmp, 'elsewhere'));
writeFileSync(path.join(run, RUN_MARKER), '{}');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function params(over: Partial<SpecialistJobParams> = {}): SpecialistJobParams {
  return {
    generalistDir: path.join(run, 'generalist', 'model'),
    trainFile: path.join(run, 'ingest', 'train.arrow'),
    validFile: path.join(run, 'ingest', 'valid.arrow'),
    classes: [0, 1],
    head: 'dustbin',
    softWeight: 1,
    T: 2,
    correction: 'fitted',
    epochs: 1,
    batchSize: 8,
    optimizer: { name: 'adam', lr: 0.01 } as SpecialistJobParams['optimizer'],
    seed: 1,
    ...over,
  };
}
const payload = (over: Partial<SpecialistJobParams> = {}, outDir = path.join(run, '.scratch-specialists-x', 'specialist-00')): unknown => ({
  runDir: run,
  job: { id: 'specialist-00', outDir, params: params(over) },
});

describe('queue address', () => {
  it('parses redis://[user:pass@]HOST:PORT[/db] and hides the password', () => {
    expect(parseQueueUrl('redis://127.0.0.1:6379')).toEqual({ host: '127.0.0.1', port: 6379, db: 0, display: 'redis://127.0.0.1:6379/0' });
    expect(parseQueueUrl('redis://ann:s%40cret@10.0.0.5:7000/3')).toEqual({ host: '10.0.0.5', port: 7000, db: 3, username: 'ann', password: 's@cret', display: 'redis://ann:***@10.0.0.5:7000/3' });
  });
  it('rejects other forms with the expected one', () => {
    expect(() => parseQueueUrl('127.0.0.1:6379')).toThrow(/--queue: '127.0.0.1:6379' is not a URL; expected redis:/);
    expect(() => parseQueueUrl('redis://localhost')).toThrow(/has no port; expected redis:\/\/\[user:pass@\]HOST:PORT\[\/db\]/);
    expect(() => parseQueueUrl('redis://localhost:6379/x')).toThrow(/the database '\/x' must be a number/);
    expect(() => parseQueueUrl('http://localhost:6379')).toThrow(/only redis:\/\/ is supported/);
  });
  it("checks the config's queue: key", () => {
    const text = (q: string): string => `queue: ${q}\nstages:\n  ingest:\n    dataset: {recipe: synthetic}\n`;
    expect(parseConfig(text('redis://127.0.0.1:6379/1'), 'q.yaml', STAGES).queue).toBe('redis://127.0.0.1:6379/1');
    expect(() => parseConfig(text('redis://127.0.0.1'), 'q.yaml', STAGES)).toThrow(/q.yaml: queue: 'redis:\/\/127.0.0.1' has no port/);
  });
});

describe('queued job payloads', () => {
  it('accepts a specialist job whose paths all lie in the run folder', () => {
    const r = checkPayload('specialist', payload());
    expect(r.type).toBe('specialist');
    expect(r.payload.job.id).toBe('specialist-00');
  });
  it('rejects unknown job types and payloads that do not match the schema', () => {
    expect(() => checkPayload('shell', payload())).toThrow(/unknown job type 'shell'; this worker runs only specialist/);
    expect(() => checkPayload('specialist', { runDir: run, job: { id: 'a/b', outDir: run } })).toThrow(/job.id: letters, digits/);
    expect(() => checkPayload('specialist', { ...(payload() as object), cmd: 'rm -rf /' })).toThrow(/bad payload: .*cmd/);
    expect(() => checkPayload('specialist', payload({ epochs: -1 }))).toThrow(/bad params: epochs/);
    expect(() => checkPayload('specialist', { runDir: run, job: { id: 's', outDir: path.join(run, 's'), params: { ...params(), module: '/tmp/evil.ts' } } })).toThrow(/bad params: .*module/);
  });
  it('rejects any path outside the run folder, relative paths, .. and symbolic links out of it', () => {
    expect(() => checkPayload('specialist', payload({}, path.join(tmp, 'elsewhere', 'specialist-00')))).toThrow(/outDir .*elsewhere.* is outside the run folder/);
    expect(() => checkPayload('specialist', payload({ trainFile: '/etc/passwd' }))).toThrow(/params.trainFile \/etc\/passwd is outside the run folder/);
    expect(() => checkPayload('specialist', payload({ validFile: path.join(run, '..', 'elsewhere', 'v.arrow') }))).toThrow(/params.validFile .* is outside the run folder/);
    expect(() => checkPayload('specialist', payload({ generalistDir: 'generalist/model' }))).toThrow(/params.generalistDir 'generalist\/model' is not an absolute path/);
    symlinkSync(path.join(tmp, 'elsewhere'), path.join(run, 'link'));
    expect(() => checkPayload('specialist', payload({}, path.join(run, 'link', 'specialist-00')))).toThrow(/outDir .* is outside the run folder/);
    expect(() => checkPayload('specialist', payload({}, run))).toThrow(/outDir is the run folder itself/);
    expect(() => checkPayload('specialist', { ...(payload() as object), runDir: path.join(tmp, 'nope') })).toThrow(/the run folder .*nope does not exist on this machine; workers need the run folder at the same path/);
    // A folder the pipeline did not create (no run marker) is no run folder, even with the paths inside it.
    const bare = path.join(tmp, 'elsewhere');
    expect(() => checkPayload('specialist', { runDir: bare, job: { id: 's', outDir: path.join(bare, 's'), params: params({ generalistDir: path.join(bare, 'g'), trainFile: path.join(bare, 't'), validFile: path.join(bare, 'v') }) } })).toThrow(/elsewhere is not a run folder \(it has no \.distill-kit-run\.json/);
  });
});

describe('payloads of the train-ensemble and distill-sweep job types', () => {
  const ingest = path.join(run, 'ingest');
  const member = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
    trainFile: path.join(ingest, 'train.arrow'),
    validFile: path.join(ingest, 'valid.arrow'),
    testFile: path.join(ingest, 'test.arrow'),
    classes: 3,
    model: modelConfigSchema.parse({ type: 'mlp', hidden: [4] }),
    training: trainingParamsSchema.parse({ epochs: 1 }),
    seed: 1,
    ...over,
  });
  const student = (over: Record<string, unknown> = {}): Record<string, unknown> => {
    const { seed: _s, ...m } = member();
    return { ...m, rowsFile: path.join(run, '.scratch-sweep-x', 'transfer-rows.i32'), loss: { type: 'soft', T: 2, alpha: 0.9 }, seed: 1, ...over };
  };
  const job = (type: string, params: Record<string, unknown>, outDir = path.join(run, '.scratch-x', 'job-0')): [string, unknown] => [type, { runDir: run, job: { id: 'job-0', outDir, params } }];
  const check = ([type, data]: [string, unknown]) => () => checkPayload(type, data);

  it('accepts jobs whose paths, and every entry of a list of paths, lie in the run folder', () => {
    expect(checkPayload(...job('ensemble-member', member())).type).toBe('ensemble-member');
    const teachers = [path.join(run, 'members', 'member-0', 'model'), path.join(run, 'members', 'member-1', 'model')];
    expect(checkPayload(...job('sweep-student', student({ teacherModels: teachers, combine: 'geometric' }))).type).toBe('sweep-student');
    expect(checkPayload(...job('sweep-student', student({ teacherFile: path.join(run, '.scratch-sweep-x', 't.f32'), teacherKind: 'logits', unlabeledFile: path.join(ingest, 'unlabeled.arrow') }))).type).toBe('sweep-student');
  });
  it('rejects a path outside the run folder in any path param, any list entry, or outDir', () => {
    expect(check(job('ensemble-member', member({ testFile: '/etc/passwd' })))).toThrow(/ensemble-member job job-0: params.testFile \/etc\/passwd is outside the run folder/);
    expect(check(job('ensemble-member', member(), path.join(tmp, 'elsewhere', 'm')))).toThrow(/ensemble-member job job-0: outDir .*elsewhere.* is outside the run folder/);
    for (const key of ['trainFile', 'validFile', 'testFile', 'rowsFile', 'unlabeledFile']) {
      expect(check(job('sweep-student', student({ [key]: path.join(run, '..', 'elsewhere', 'f') }))), key).toThrow(new RegExp(`params.${key} .* is outside the run folder`));
    }
    expect(check(job('sweep-student', student({ teacherFile: path.join(tmp, 'elsewhere', 't.f32'), teacherKind: 'logits' })))).toThrow(/params.teacherFile .* is outside the run folder/);
    const list = [path.join(run, 'generalist', 'model'), path.join(tmp, 'elsewhere', 'model')];
    expect(check(job('sweep-student', student({ teacherModels: list, combine: 'arithmetic' })))).toThrow(/sweep-student job job-0: params.teacherModels\[1\] .*elsewhere.* is outside the run folder/);
    expect(check(job('sweep-student', student({ teacherModels: ['generalist/model'], combine: 'arithmetic' })))).toThrow(/params.teacherModels\[0\] 'generalist\/model' is not an absolute path/);
  });
  it('rejects params outside the schemas, and unknown job types', () => {
    expect(check(job('ensemble-member', { ...member(), module: '/tmp/evil.ts' }))).toThrow(/ensemble-member job job-0: bad params: .*module/);
    expect(check(job('ensemble-member', member({ classes: 0 })))).toThrow(/bad params: classes/);
    expect(check(job('sweep-student', student({ loss: { type: 'shell', cmd: 'rm -rf /' } })))).toThrow(/sweep-student job job-0: bad params: loss/);
    expect(check(job('sweep-student', student({ teacherFile: path.join(run, 't.f32') })))).toThrow(/bad params: teacherKind: teacherFile and teacherKind go together/);
    expect(check(job('sweep-student', student({ teacherModels: [path.join(run, 'g')] })))).toThrow(/bad params: combine: teacherModels and combine go together/);
    expect(check(job('ensemble', member()))).toThrow(/unknown job type 'ensemble'; this worker runs only specialist, ensemble-member, sweep-student/);
  });
});
