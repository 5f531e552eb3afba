/**
 * One input contract: a JOB_CREATED message, the JSON body of POST /jobs and a multipart upload's fields are read by
 * one schema (src/lib/job-input.ts), so the same wishes are accepted, refused and coded alike whichever way they come.
 */
import { describe, expect, test } from 'vitest';
import {
  JobInputSchema,
  JobRequestSchema,
  MAX_PRIORITY,
  requestFromFields,
  requestProblem,
} from '../src/lib/job-input.js';
import { parseJobCreated } from '../src/queue/messages.js';

const file = { path: '/srv/in/a.jpg', name: 'a.jpg' };
const wishes = {
  priority: 7,
  notifyUrl: 'https://hooks.example.com/done',
  instructions: { skip: ['analyzeImage'], thumbnails: { widths: [128] } },
  profile: 'quick',
};

/** The code and message a request gets, or null when it is accepted. */
function problem(raw: unknown): { code: string; message: string } | null {
  const parsed = JobRequestSchema.safeParse(raw);
  return parsed.success ? null : requestProblem(parsed.error);
}

describe('one schema for every way a job comes in', () => {
  test('the same wishes as JSON, as a message and as multipart fields are the same request', () => {
    const json = JobRequestSchema.parse({ file, user: { id: 'u-1' }, ...wishes });
    const message = parseJobCreated({ jobId: 'j-1', file, user: { id: 'u-1' }, ...wishes });
    expect(message.ok && message.input).toEqual({ jobId: 'j-1', ...json });
    const fields = {
      userId: 'u-1',
      priority: '7',
      notifyUrl: wishes.notifyUrl,
      instructions: JSON.stringify(wishes.instructions),
      profile: 'quick',
    };
    expect(JobRequestSchema.parse(requestFromFields(fields, file))).toEqual(json);
  });

  test('a multipart priority is a number only when written as one, and bounded as in JSON', () => {
    const priority = (value: string): unknown =>
      JobRequestSchema.safeParse(requestFromFields({ priority: value }, file)).data?.priority;
    expect(priority('007')).toBe(7);
    expect(priority('0')).toBe(0);
    expect(priority(String(MAX_PRIORITY))).toBe(MAX_PRIORITY);
    for (const bad of ['1e3', '-1', '2.5', ' 3', '', String(MAX_PRIORITY + 1), '99999999999999999'])
      expect(problem(requestFromFields({ priority: bad }, file))?.code, bad).toBe('BAD_REQUEST');
    expect(problem({ file, priority: MAX_PRIORITY + 1 })?.code).toBe('BAD_REQUEST');
  });

  test('instructions and profile are INVALID_INPUT whichever way they come; the rest of the request BAD_REQUEST', () => {
    const viaFields = problem(requestFromFields({ instructions: '{"colour":"red"}' }, file));
    const viaJson = problem({ file, instructions: { colour: 'red' } });
    expect(viaFields).toEqual(viaJson);
    expect(viaJson?.code).toBe('INVALID_INPUT');
    expect(viaJson?.message).toMatch(/instructions: .*colour/);
    expect(problem(requestFromFields({ instructions: 'not json' }, file))?.code).toBe('INVALID_INPUT');
    expect(problem(requestFromFields({ profile: '../etc' }, file))?.code).toBe('INVALID_INPUT');
    expect(problem(requestFromFields({ notifyUrl: 'https://user:pw@example.com/' }, file))?.code).toBe('BAD_REQUEST');
    expect(problem(requestFromFields({ userId: 'u'.repeat(201) }, file))?.code).toBe('BAD_REQUEST');
    expect(problem({ file, jobId: 'chosen' })).toMatchObject({ code: 'BAD_REQUEST', message: /jobId/ });
  });

  test('a message must carry its id and an absolute path; a request may name a relative one', () => {
    expect(JobInputSchema.safeParse({ jobId: 'j', file: { path: 'in/a.jpg' } }).success).toBe(false);
    expect(JobInputSchema.safeParse({ file: { path: '/in/a.jpg' } }).success).toBe(false);
    expect(JobInputSchema.safeParse({ jobId: 'a:b', file: { path: '/in/a.jpg' } }).success).toBe(false);
    expect(JobRequestSchema.safeParse({ file: { path: 'in/a.jpg' } }).success).toBe(true);
  });
});
