/**
 * Finding Redis. REDIS_URL when set; else redis://127.0.0.1:6379 when something answers there; else, for a
 * one-machine install, a private redis-server from PATH with its files (AOF on) in DATA_DIR/redis. The private
 * server's URL is written to DATA_DIR/redis/url so the CLI on the same machine finds it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../lib/log.js';
import { freePort } from '../lib/net.js';
import { DEFAULT_REDIS_URL, redisAnswers } from './connection.js';

export class RedisUnavailableError extends Error {
  constructor(url: string, detail: string) {
    super(`Redis is not reachable at ${url}: ${detail}`);
    this.name = 'RedisUnavailableError';
  }
}

export interface RedisEndpoint {
  url: string;
  /** Stops the private redis-server, when this process started one. */
  stop(): Promise<void>;
}

const urlFile = (config: Config): string => path.join(config.dataDir, 'redis', 'url');

/** For clients (CLI): the configured, default or private Redis that answers, or a clear error. */
export async function findRedis(config: Config): Promise<string> {
  if (config.redisUrl) {
    if (await redisAnswers(config.redisUrl)) return config.redisUrl;
    throw new RedisUnavailableError(config.redisUrl, 'nothing answered (check REDIS_URL and that Redis is running)');
  }
  if (await redisAnswers(DEFAULT_REDIS_URL)) return DEFAULT_REDIS_URL;
  const privateUrl = fs.existsSync(urlFile(config)) ? fs.readFileSync(urlFile(config), 'utf8').trim() : '';
  if (privateUrl && (await redisAnswers(privateUrl))) return privateUrl;
  throw new RedisUnavailableError(
    DEFAULT_REDIS_URL,
    'nothing answered; start Redis, set REDIS_URL, or run `media-orchestrator start` (it starts a private redis-server)',
  );
}

/** For the service: as findRedis, but starts a private redis-server when REDIS_URL is unset and none answers. */
export async function ensureRedis(config: Config, log: Logger): Promise<RedisEndpoint> {
  const none = (): Promise<void> => Promise.resolve();
  if (config.redisUrl) return { url: await findRedis(config), stop: none };
  try {
    return { url: await findRedis(config), stop: none };
  } catch {
    return startPrivateRedis(config, log);
  }
}

async function startPrivateRedis(config: Config, log: Logger): Promise<RedisEndpoint> {
  const dir = path.dirname(urlFile(config));
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  // appendonly: queued jobs survive a restart of this Redis; everything stays on loopback.
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes', '--save', ''];
  let child: ChildProcess;
  try {
    child = spawn('redis-server', args, { stdio: 'ignore' });
  } catch (err) {
    throw new RedisUnavailableError(
      DEFAULT_REDIS_URL,
      `nothing answered and redis-server could not start: ${String(err)}`,
    );
  }
  const failed = new Promise<never>((_, rejectStart) => {
    child.once('error', (err) =>
      rejectStart(
        new RedisUnavailableError(DEFAULT_REDIS_URL, `nothing answered and no redis-server on PATH (${err.message})`),
      ),
    );
  });
  failed.catch(() => undefined);
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (await Promise.race([redisAnswers(url, 500), failed])) break;
    if (Date.now() > deadline) throw new RedisUnavailableError(url, 'the private redis-server did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
  fs.writeFileSync(urlFile(config), url);
  log.info({ url, dir }, 'started a private redis-server (set REDIS_URL to use your own)');
  return {
    url,
    stop: async () => {
      fs.rmSync(urlFile(config), { force: true });
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}
