/**
 * The one failure policy: what a thrown error means for a step (its code, whether another attempt can help), decided
 * in one function for the inline dispatcher, the step threads and the task workers alike.
 */
import fs from 'node:fs';
import Database from 'better-sqlite3';
import { expect, test } from 'vitest';
import { failureOf, MediaError } from '../src/lib/errors.js';
import { isDiskFull, isTransient } from '../src/lib/transient.js';

const learnt = {
  fileType: 'pdf' as const,
  fileInfo: { name: 'a.pdf', size: 10, mime: 'application/pdf', ext: 'pdf', sha256: 'a'.repeat(64) },
};

test('bad input is final, transient trouble and unknown errors are retried, cancellation never is', () => {
  expect(failureOf(new MediaError('CORRUPT_FILE', 'bad bytes'))).toEqual({
    status: 'failed',
    code: 'CORRUPT_FILE',
    message: 'bad bytes',
    retryable: false,
  });
  expect(failureOf(new MediaError('TIMEOUT', 'slow', { retryable: true }))).toMatchObject({ retryable: true });
  expect(failureOf(new Error('socket hang up'))).toEqual({
    status: 'failed',
    code: 'INTERNAL',
    message: 'socket hang up',
    retryable: true,
  });
  // Even a cancellation that calls itself retryable, and an AbortError from a library, end the step.
  expect(failureOf(new MediaError('CANCELLED', 'stop', { retryable: true }))).toMatchObject({ retryable: false });
  const abort = Object.assign(new Error('aborted'), { name: 'AbortError' });
  expect(failureOf(abort)).toMatchObject({ code: 'CANCELLED', retryable: false });
});

test('what the step learnt and an outside interruption cross a thread in its failed outcome', () => {
  const original = new MediaError('ENCRYPTED', 'the PDF is protected by a password', { learnt, interrupted: true });
  // Structured clone: what postMessage does to a thread's reply.
  const crossed = structuredClone(failureOf(original));
  expect(crossed).toEqual({
    status: 'failed',
    code: 'ENCRYPTED',
    message: 'the PDF is protected by a password',
    retryable: false,
    interrupted: true,
    learnt,
  });
});

test('a full disk is RESOURCE_LIMIT and worth another attempt, whether a file write or SQLite says so', () => {
  // /dev/full answers every write with ENOSPC: the error a full disk gives, without filling one.
  let enospc: unknown;
  try {
    fs.writeFileSync('/dev/full', 'x');
  } catch (err) {
    enospc = err;
  }
  expect(failureOf(enospc)).toMatchObject({ code: 'RESOURCE_LIMIT', retryable: true });
  expect(isTransient(enospc) && isDiskFull(enospc)).toBe(true);

  // A database that may not grow is full the way SQLite reports a full disk.
  const db = new Database(':memory:');
  let full: unknown;
  try {
    db.exec('CREATE TABLE t (x BLOB)');
    db.pragma('max_page_count = 2');
    db.prepare('INSERT INTO t VALUES (zeroblob(100000))').run();
  } catch (err) {
    full = err;
  } finally {
    db.close();
  }
  expect((full as { code?: string }).code).toBe('SQLITE_FULL');
  expect(failureOf(full)).toMatchObject({ code: 'RESOURCE_LIMIT', retryable: true });
  expect(isTransient(full)).toBe(true);
  // A bug is neither.
  expect(isTransient(new TypeError('x is undefined'))).toBe(false);
});

test('a process the system refuses to start (spawn ENOMEM or EAGAIN) is RESOURCE_LIMIT and worth another attempt', () => {
  // The shape of the error child_process.spawn emits when fork fails (an overloaded machine cannot be made on demand).
  const refused = (code: string) =>
    Object.assign(new Error(`spawn /usr/bin/ffmpeg ${code}`), {
      errno: code === 'ENOMEM' ? -12 : -11,
      code,
      syscall: 'spawn /usr/bin/ffmpeg',
      path: '/usr/bin/ffmpeg',
    });
  for (const code of ['ENOMEM', 'EAGAIN']) {
    expect(failureOf(refused(code))).toMatchObject({ code: 'RESOURCE_LIMIT', retryable: true });
    expect(failureOf(refused(code)).message).toMatch(/could not start a process/);
  }
  // The same codes from something else are not a refused process.
  const read = Object.assign(new Error('EAGAIN: resource temporarily unavailable, read'), {
    code: 'EAGAIN',
    syscall: 'read',
  });
  expect(failureOf(read)).toMatchObject({ code: 'INTERNAL' });
});
