/**
 * The generated webhook key on a shared DATA_DIR: processes on several machines start at once on a fresh volume, and
 * every one of them must sign with the same, whole key (before: one could fail on EEXIST, or read the file before it
 * was written and sign with an empty key).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { ROOT, tempDir } from './helpers.js';

const dir = tempDir('webhook-secret');
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** One process: loads the built service and prints the key it would sign with. */
function keyOfAProcess(dataDir: string): Promise<string> {
  const code = `
    const { loadConfig } = await import(${JSON.stringify(path.join(ROOT, 'dist/config.js'))});
    const { webhookSecret } = await import(${JSON.stringify(path.join(ROOT, 'dist/queue/webhooks.js'))});
    process.stdout.write(webhookSecret(loadConfig({ DATA_DIR: ${JSON.stringify(dataDir)} })));`;
  return new Promise((resolve, reject) =>
    execFile(process.execPath, ['--input-type=module', '-e', code], (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

test('processes starting at once on a fresh DATA_DIR all get the same whole key', { timeout: 120_000 }, async () => {
  for (let round = 0; round < 3; round++) {
    const dataDir = path.join(dir, `round-${round}`);
    const keys = await Promise.all(Array.from({ length: 8 }, () => keyOfAProcess(dataDir)));
    expect(new Set(keys).size, keys.join('\n')).toBe(1);
    expect(keys[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(fs.readFileSync(path.join(dataDir, 'webhook-secret'), 'utf8')).toBe(keys[0]);
    expect(fs.statSync(path.join(dataDir, 'webhook-secret')).mode & 0o777).toBe(0o600);
    // No temporary files are left beside it.
    expect(fs.readdirSync(dataDir)).toEqual(['webhook-secret']);
  }
});

test('a key file that holds no key (empty, cut short) stops start-up instead of signing with it', async () => {
  const dataDir = path.join(dir, 'cut');
  fs.mkdirSync(dataDir);
  for (const content of ['', '0123abcd', 'not hex at all, but long enough to pass a length check alone........']) {
    fs.writeFileSync(path.join(dataDir, 'webhook-secret'), content);
    await expect(keyOfAProcess(dataDir)).rejects.toThrow(/does not hold a webhook key/);
  }
});
