/**
 * The waveform step by itself on five minutes of stereo 44.1 kHz MP3 (pink noise under a tone): seconds of work per
 * minute of audio, beside a plain ffmpeg decode of the same file to null in the same run (the floor: any waveform
 * has to decode). Three flavours: a video's sound (waveform, PNG, loudness, silences); an MP3 file (the same, and
 * its stream copied as the player's audio.mp3); a file of another codec (the same, and audio.mp3 encoded; here the
 * same MP3 declared as AAC, so the decode costs the same). Median of `runs`, with the range.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/lib/log.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import type { FileType } from '../src/lib/types.js';
import { createDeps, type JobSink } from '../src/nodes/index.js';
import { waveform } from '../src/nodes/waveform.js';

const MINUTES = 5;

const sink: JobSink = {
  saveFinished: () => Promise.resolve(),
  stepStarted: () => Promise.resolve(0),
  stepEnded: () => Promise.resolve(),
  aiUsed: () => Promise.resolve(),
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchWaveform(work: string, runs: number, row: (label: string, value: string) => void) {
  const { ffmpeg } = resolveToolPaths();
  const file = path.join(work, 'five-minutes.mp3');
  execFileSync(ffmpeg, [
    ...['-v', 'error', '-nostdin', '-y'],
    ...['-f', 'lavfi', '-i', `anoisesrc=d=${MINUTES * 60}:c=pink:r=44100:a=0.2`],
    ...['-f', 'lavfi', '-i', `sine=f=440:d=${MINUTES * 60}:sample_rate=44100`],
    ...['-filter_complex', '[0:a][1:a]amerge=inputs=2[a]', '-map', '[a]', '-c:a', 'libmp3lame', '-b:a', '192k', file],
  ]);
  const deps = createDeps(loadConfig({ DATA_DIR: path.join(work, 'waveform-data') }), sink, createLogger('warn'));
  const timed = async (fn: () => unknown): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await fn();
      out.push((performance.now() - started) / 1000);
    }
    return out;
  };
  const step = (fileType: FileType, codec: string, i: { n: number }) => () =>
    waveform(
      {
        jobId: `wave-${fileType}-${i.n++}`,
        file: { path: file },
        user: null,
        fileType,
        fileInfo: {
          name: 'five-minutes.mp3',
          size: fs.statSync(file).size,
          mime: 'audio/mpeg',
          ext: 'mp3',
          sha256: '',
        },
        results: {
          metadata: {
            size: 0,
            sha256: '',
            mime: 'audio/mpeg',
            uploader: null,
            hasAudio: true,
            durationSec: MINUTES * 60,
            streams: [{ index: 0, type: 'audio', codec, channels: 2 }],
          },
        },
      },
      deps,
      { signal: new AbortController().signal, attempt: 1, log: deps.log },
    ).then((outcome) => {
      if (outcome.status !== 'succeeded') throw new Error(`waveform: ${JSON.stringify(outcome)}`);
    });
  const decode = await timed(() =>
    execFileSync(ffmpeg, ['-v', 'error', '-nostdin', '-f', 'mp3', '-i', file, '-f', 'null', '-']),
  );
  const sound = await timed(step('video', 'mp3', { n: 0 }));
  const copied = await timed(step('audio', 'mp3', { n: 0 }));
  const encoded = await timed(step('audio', 'aac', { n: 0 }));
  const show = (label: string, secs: number[]): void => {
    const perMin = secs.map((s) => s / MINUTES);
    row(
      label,
      `${median(perMin).toFixed(2)} s per minute (${Math.min(...perMin).toFixed(2)}–${Math.max(...perMin).toFixed(2)}), ` +
        `${((MINUTES * 60) / median(secs)).toFixed(0)}x real time`,
    );
  };
  show('plain ffmpeg decode to null (baseline)', decode);
  show('waveform + loudness + silences (a video sound)', sound);
  show('  and audio.mp3 copied (an MP3 file)', copied);
  show('  and audio.mp3 encoded at 128 kb/s (another codec)', encoded);
  row('ratio waveform / plain decode', (median(sound) / median(decode)).toFixed(1));
}
