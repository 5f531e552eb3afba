/**
 * `submit --wait` redraws one line per job on a terminal by moving the cursor up over them: a line wider than the
 * terminal wraps onto a second row and the redraw then leaves stale text behind. Every line fits its width.
 */
import { expect, test } from 'vitest';
import { fit, progressLine } from '../src/cli/format.js';

test('a running job with every step named fits an 80-column terminal', () => {
  const line = progressLine('a-long-holiday-video-file-name-from-a-phone.mp4', {
    validate: 'succeeded',
    extractMetadata: 'succeeded',
    posterFrame: 'succeeded',
    extractAudio: 'running',
    transcribe: 'pending',
  });
  expect(line).toBe('a-long-holiday-video-file-name-from-a-phone.mp4: running 3/5  … extractAudio');
  const shown = fit(line!, 79);
  expect([...shown].length).toBeLessThanOrEqual(79);
  expect(shown).toBe(line);
});

test('a line wider than the terminal is cut with an ellipsis, counting characters, not bytes', () => {
  const line = progressLine('x'.repeat(70), { validate: 'failed', extractMetadata: 'running' })!;
  expect(line).toBe(`${'x'.repeat(70)}: running 1/2  ✖ validate  … extractMetadata`);
  const shown = fit(line, 79);
  expect([...shown]).toHaveLength(79);
  expect(shown.endsWith('…')).toBe(true);
  expect(fit('short', 79)).toBe('short');
});

test('an update that names no step draws nothing', () => {
  expect(progressLine('photo.jpg', {})).toBeNull();
});
