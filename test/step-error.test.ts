/**
 * The one failure policy: what a thrown error means for a step (its code, whether another attempt can help), decided
 * in one function for the inline dispatcher, the step threads and the task workers alike.
 */
import { expect, test } from 'vitest';
import { fromStepError, MediaError, stepErrorOf } from '../src/lib/errors.js';

const learnt = {
  fileType: 'pdf' as const,
  fileInfo: { name: 'a.pdf', size: 10, mime: 'application/pdf', ext: 'pdf', sha256: 'a'.repeat(64) },
};

test('bad input is final, transient trouble and unknown errors are retried, cancellation never is', () => {
  expect(stepErrorOf(new MediaError('CORRUPT_FILE', 'bad bytes'))).toEqual({
    code: 'CORRUPT_FILE',
    message: 'bad bytes',
    retryable: false,
  });
  expect(stepErrorOf(new MediaError('TIMEOUT', 'slow', { retryable: true }))).toMatchObject({ retryable: true });
  expect(stepErrorOf(new Error('socket hang up'))).toEqual({
    code: 'INTERNAL',
    message: 'socket hang up',
    retryable: true,
  });
  // Even a cancellation that calls itself retryable, and an AbortError from a library, end the step.
  expect(stepErrorOf(new MediaError('CANCELLED', 'stop', { retryable: true }))).toMatchObject({ retryable: false });
  const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
  expect(stepErrorOf(abort)).toMatchObject({ code: 'CANCELLED', retryable: false });
});

test('what the step learnt and an outside interruption cross a thread and come back as the same error', () => {
  const original = new MediaError('ENCRYPTED', 'the PDF is protected by a password', { learnt, interrupted: true });
  // Structured clone: what postMessage does to a thread's reply.
  const crossed = structuredClone(stepErrorOf(original));
  expect(crossed).toEqual({
    code: 'ENCRYPTED',
    message: 'the PDF is protected by a password',
    retryable: false,
    interrupted: true,
    learnt,
  });
  const again = fromStepError(crossed);
  expect(again).toBeInstanceOf(MediaError);
  expect(stepErrorOf(again)).toEqual(crossed);
});
