/**
 * A `start` process on its own DATA_DIR and queue prefix, and Debian's Chromium (headless, through Playwright) to look
 * at its dashboard: what the browser tests share. `close` stops both and removes what they left.
 */
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { freePort } from '../../src/lib/net.js';
import { dropPrefix, ServiceProcess, tempDir, TEST_REDIS_URL, uniquePrefix } from '../helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface BrowserService {
  base: string;
  port: number;
  dataDir: string;
  browser: Browser;
  close(): Promise<void>;
}

export async function browserService(
  name: string,
  env: Record<string, string> = {},
  chromiumArgs: string[] = [],
): Promise<BrowserService> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (.ci/run does)`);
  const prefix = uniquePrefix(name);
  const dataDir = tempDir(name);
  const port = await freePort();
  const service = await new ServiceProcess([], {
    DATA_DIR: dataDir,
    REDIS_URL: TEST_REDIS_URL,
    QUEUE_PREFIX: prefix,
    PORT: String(port),
    ...env,
  }).ready();
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', ...chromiumArgs],
  });
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    dataDir,
    browser,
    async close() {
      await browser.close();
      await service.stop();
      await dropPrefix(TEST_REDIS_URL, prefix);
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
