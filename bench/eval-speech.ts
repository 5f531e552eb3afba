/**
 * How many words the offline recognizer gets wrong: the word error rate (substitutions, deletions and insertions
 * over the reference's words) of src/ai/pocketsphinx.ts on the recordings with reference transcripts that Debian's
 * `pocketsphinx-testdata` ships (five sentences of a LibriVox reading, five spoken card names, "go forward ten
 * meters"), each as extractAudio would hand it over (16 kHz MP3); on those five sentences joined into one 28 s
 * recording; and on that recording made to sound like a phone call: band-limited to 300–3,400 Hz, sampled at 8 kHz,
 * pink noise mixed in about 10 dB below the speech, stored as G.711 µ-law.
 *
 *   npm run eval:speech                                          # this checkout's recognizer
 *   npm run eval:speech -- --impl ../main/src/ai/pocketsphinx.ts # another checkout's, to compare
 *   npm run eval:speech -- --show                                # with what was heard and what was said
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { SpeechModel } from '../src/ai/types.js';
import { resolveToolPaths } from '../src/lib/tools.js';
import { TESTDATA, testClips, wordEdits } from './speech-data.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Recording {
  name: string;
  file: string;
  reference: string;
}

/** What extractAudio makes of a recording (16 kHz mono MP3, 32 kb/s): the recognizer gets what the service gives. */
function asExtracted(ffmpeg: string, input: string[], target: string): string {
  const out = ['-ac', '1', '-ar', '16000', '-c:a', 'libmp3lame', '-b:a', '32k', target];
  execFileSync(ffmpeg, ['-v', 'error', '-nostdin', '-y', ...input, ...out]);
  return target;
}

function recordings(dir: string, ffmpeg: string): Recording[] {
  const clips = testClips();
  const list: Recording[] = clips.map((c) => ({
    name: c.name.replace(/sense_and_sensibility_01_austen_64kb-/, ''),
    file: asExtracted(ffmpeg, c.input, path.join(dir, `${c.name}.mp3`)),
    reference: c.reference,
  }));
  const sentences = clips.filter((c) => c.name.startsWith('librivox-'));
  const joined = path.join(dir, 'librivox-joined.wav');
  const concat = `${sentences.map((_, i) => `[${i}:a]`).join('')}concat=n=${sentences.length}:v=0:a=1`;
  const inputs = sentences.flatMap((c) => c.input);
  execFileSync(ffmpeg, ['-v', 'error', '-y', ...inputs, '-filter_complex', `${concat}[a]`, '-map', '[a]', joined]);
  const reference = sentences.map((c) => c.reference).join(' ');
  list.push({ name: 'librivox joined (28 s)', file: asExtracted(ffmpeg, ['-i', joined], `${joined}.mp3`), reference });
  // A phone call: the telephone band, 8 kHz, pink noise about 10 dB under the speech (mean levels -24 and -34 dB;
  // amix halves both, volume=2 puts them back), G.711 µ-law; then extracted as any upload would be.
  const phone = path.join(dir, 'librivox-phone.wav');
  execFileSync(ffmpeg, [
    ...['-v', 'error', '-y', '-i', joined],
    ...['-f', 'lavfi', '-i', 'anoisesrc=color=pink:amplitude=0.1:seed=7:sample_rate=16000'],
    ...['-filter_complex', '[0:a]highpass=f=300,lowpass=f=3400[v];[v][1:a]amix=inputs=2:duration=first,volume=2[m]'],
    ...['-map', '[m]', '-ar', '8000', '-ac', '1', '-c:a', 'pcm_mulaw', phone],
  ]);
  const name = 'librivox joined, phone + noise';
  list.push({ name, file: asExtracted(ffmpeg, ['-i', phone], `${phone}.mp3`), reference });
  return list;
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--impl');
  const impl = i > 0 ? path.resolve(process.argv[i + 1] ?? '') : path.join(ROOT, 'src', 'ai', 'pocketsphinx.ts');
  const mod = (await import(pathToFileURL(impl).href)) as {
    findPocketsphinx(searchPath: string | undefined): string | null;
    createPocketsphinxSpeech(opts: { binary: string; ffmpeg: string }): SpeechModel;
  };
  const binary = mod.findPocketsphinx(process.env.PATH);
  if (!binary) throw new Error('pocketsphinx_continuous and its en-us model are not installed');
  if (!fs.existsSync(TESTDATA)) throw new Error(`${TESTDATA} is missing: install pocketsphinx-testdata`);
  const { ffmpeg } = resolveToolPaths();
  const model = mod.createPocketsphinxSpeech({ binary, ffmpeg });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-speech-'));
  const line = (name: string, words: number, errors: number, time: string): void =>
    console.log(
      `${name.padEnd(34)} ${String(words).padStart(5)} ${String(errors).padStart(6)} ${pct(errors, words)} ${time}`,
    );
  try {
    console.log(`recognizer: ${path.relative(process.cwd(), impl)} (${model.model})\n`);
    console.log(`${'recording'.padEnd(34)} ${'words'.padStart(5)} ${'errors'.padStart(6)} ${'WER'.padStart(7)} time`);
    const testData = { errors: 0, words: 0 };
    const all = { errors: 0, words: 0 };
    for (const r of recordings(dir, ffmpeg)) {
      const started = performance.now();
      const result = await model.transcribe(
        { audioPath: r.file, durationSec: null },
        { signal: AbortSignal.timeout(900_000) },
      );
      const seconds = (performance.now() - started) / 1000;
      const { edits, words } = wordEdits(r.reference, result.text);
      // The joined recordings repeat the five sentences: the test data's own files are counted apart.
      if (!r.name.startsWith('librivox joined')) {
        testData.errors += edits;
        testData.words += words;
      }
      all.errors += edits;
      all.words += words;
      line(r.name, words, edits, `${seconds.toFixed(1)} s`);
      if (process.argv.includes('--show')) console.log(`  heard: ${result.text}\n  said:  ${r.reference}`);
    }
    console.log('');
    line('overall, the test data (11 files)', testData.words, testData.errors, '');
    line('overall, every recording above', all.words, all.errors, '');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function pct(errors: number, total: number): string {
  return `${((100 * errors) / Math.max(1, total)).toFixed(1)} %`.padStart(7);
}

await main();
