/**
 * The mutation fuzzer (`npm run fuzz`): its judge, its reproducibility, and a short fixed-seed run of the whole
 * `process` path over mutated corpus files that must find nothing (no crash, hang, INTERNAL or malformed document).
 * The long runs (10,000 cases and more) are `npm run fuzz`; their figures are in docs/reliability.md.
 */
import { describe, expect, test } from 'vitest';
import { CORPUS_TYPES, loadCorpus, makeCase } from '../fuzz/driver.js';
import { findFields } from '../fuzz/fields.js';
import { judge } from '../fuzz/judge.js';
import type { JobDocument } from '../src/lib/types.js';
import { CORPUS } from './helpers.js';

const files = loadCorpus(CORPUS, CORPUS_TYPES);

function doc(fields: Partial<JobDocument>): JobDocument {
  return {
    id: 'j',
    status: 'completed',
    fileType: 'image',
    file: { name: 'x' },
    user: null,
    steps: {},
    results: {},
    error: null,
    ...fields,
  } as JobDocument;
}

describe('the judge', () => {
  test('a rejection with a named code is clean', () => {
    const error = { code: 'CORRUPT_FILE' as const, message: 'cut short', step: 'validate' as const };
    const j = judge(doc({ status: 'failed', error, steps: { validate: { status: 'failed', attempts: 1, error } } }));
    expect(j).toMatchObject({ outcome: 'failed:CORRUPT_FILE', stepErrors: ['validate:CORRUPT_FILE'], finding: null });
  });

  test('INTERNAL anywhere is a finding, also in an optional step of a completed job', () => {
    const error = { code: 'INTERNAL' as const, message: 'boom', step: 'renderPreview' as const };
    const j = judge(
      doc({ status: 'completed_with_errors', steps: { renderPreview: { status: 'failed', attempts: 3, error } } }),
    );
    expect(j.finding).toEqual({ kind: 'INTERNAL', detail: 'renderPreview: boom' });
    expect(judge(doc({ status: 'failed', error })).finding?.kind).toBe('INTERNAL');
  });

  test('a step left running, a job not ended or an unknown code is a malformed document', () => {
    expect(judge(doc({ steps: { validate: { status: 'running', attempts: 1 } } })).finding?.kind).toBe('BAD_DOCUMENT');
    expect(judge(doc({ status: 'running' })).finding?.kind).toBe('BAD_DOCUMENT');
    const error = { code: 'OOPS', message: '?', step: 'validate' } as unknown as JobDocument['error'];
    expect(judge(doc({ status: 'failed', error })).finding?.kind).toBe('BAD_DOCUMENT');
  });
});

describe('cases', () => {
  test('case i of seed s is the same bytes every time, and neighbours differ', () => {
    const a = makeCase(42, 1234, files);
    const b = makeCase(42, 1234, files);
    expect(b.file.path).toBe(a.file.path);
    expect(b.ops).toEqual(a.ops);
    expect(b.data.equals(a.data)).toBe(true);
    const others = [makeCase(42, 1235, files), makeCase(43, 1234, files)];
    expect(others.some((c) => !c.data.equals(a.data))).toBe(true);
  });

  test('header fields are found in every container of the corpus that has them', () => {
    for (const p of [
      'image/flowers.jpeg',
      'image/with-alpha.png',
      'image/pitm.avif',
      'video/clip.mkv',
      'pdf/arabic.pdf',
    ]) {
      const file = files.find((f) => f.path === p)!;
      expect(findFields(file.data).length, p).toBeGreaterThan(3);
    }
  });
});
