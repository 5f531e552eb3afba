/**
 * The package's `plugin` entry as a plugin author uses it: `media-orchestrator/plugin` resolves through the package's
 * `exports` to the built JavaScript and its declarations, and a TypeScript plugin type-checks against them (a wrong
 * field is an error, not an `any`). `npm test` builds dist/ first.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, expect, test } from 'vitest';
import { ROOT, tempDir } from './helpers.js';

const dir = tempDir('plugin-entry');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A project of a plugin author's, with this package installed (linked) as a dependency. */
function project(source: string): string {
  fs.mkdirSync(path.join(dir, 'node_modules'), { recursive: true });
  const link = path.join(dir, 'node_modules', 'media-orchestrator');
  if (!fs.existsSync(link)) fs.symlinkSync(ROOT, link, 'dir');
  const file = path.join(dir, `plugin-${fs.readdirSync(dir).length}.mts`);
  fs.writeFileSync(file, source);
  return file;
}

const tsc = async (file: string): Promise<{ code: number; out: string }> => {
  const bin = path.join(ROOT, 'node_modules', '.bin', 'tsc');
  const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'];
  try {
    await promisify(execFile)(bin, [...args, '--skipLibCheck', file], { cwd: dir });
    return { code: 0, out: '' };
  } catch (err) {
    const e = err as { code: number; stdout: string };
    return { code: e.code, out: e.stdout };
  }
};

const PLUGIN = `import { defineStep, PluginError } from 'media-orchestrator/plugin';
export default defineStep({
  name: 'tagger',
  fileTypes: ['image'],
  after: 'generateThumbnails',
  queue: 'image',
  run: async (input, ctx) => {
    ctx.progress(0.5);
    if (!input.file.name) throw new PluginError('NO_NAME', 'the file has no name');
    return { name: input.file.name, job: input.jobId };
  },
});
`;

test(
  'a TypeScript plugin type-checks against the built entry, and a wrong field does not',
  { timeout: 120_000 },
  async () => {
    expect(fs.existsSync(path.join(ROOT, 'dist', 'plugins', 'define.d.ts')), 'run npm run build first').toBe(true);
    expect(await tsc(project(PLUGIN))).toEqual({ code: 0, out: '' });
    const wrong = await tsc(project(PLUGIN.replace("fileTypes: ['image']", "fileTypes: ['spreadsheet']")));
    expect(wrong.code).not.toBe(0);
    expect(wrong.out).toMatch(/spreadsheet/);
  },
);

test('the entry resolves at run time to defineStep and PluginError', async () => {
  const file = path.join(dir, 'load.mjs');
  fs.writeFileSync(
    file,
    `const m = await import('media-orchestrator/plugin'); console.log(JSON.stringify([typeof m.defineStep, typeof m.PluginError]));`,
  );
  project('');
  const { stdout } = await promisify(execFile)(process.execPath, [file], { cwd: dir });
  expect(JSON.parse(stdout)).toEqual(['function', 'function']);
});
