import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobDocument } from '../src/lib/types.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const BIN = path.join(ROOT, 'bin', 'media-orchestrator');
/** The team's shared media corpus: referenced in place, never copied into the repository. */
export const CORPUS = process.env.MEDIA_CORPUS ?? path.resolve(ROOT, '..', 'shared', 'corpus');

export interface ManifestRow {
  path: string;
  expect: string[];
  note: string;
}

export function manifest(): ManifestRow[] {
  const lines = fs.readFileSync(path.join(CORPUS, 'MANIFEST.tsv'), 'utf8').trim().split('\n').slice(1);
  return lines.map((line) => {
    const [p = '', expect = '', , note = ''] = line.split('\t');
    return { path: p, expect: expect.split('|'), note };
  });
}

/** `reject:CORRUPT_FILE|UNSUPPORTED_TYPE` means either code; normalise to outcomes like `image` or `reject:X`. */
export function acceptedOutcomes(row: ManifestRow): string[] {
  const out: string[] = [];
  for (const e of row.expect)
    out.push(e.startsWith('reject:') || ['image', 'video', 'audio', 'pdf'].includes(e) ? e : `reject:${e}`);
  return out;
}

export function outcomeOf(doc: JobDocument): string {
  if (doc.status === 'completed' || doc.status === 'completed_with_errors') return doc.fileType ?? 'unknown';
  return `reject:${doc.error?.code ?? 'NONE'}`;
}

export function tempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `mo-${prefix}-`));
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, LOG_LEVEL: 'warn', ...env }, timeout: timeoutMs, maxBuffer: 32 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}
