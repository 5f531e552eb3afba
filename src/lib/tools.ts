/**
 * Runs ffmpeg and ffprobe as child processes that really stop: on timeout or abort the child is killed (SIGKILL),
 * so a hung decode never outlives its step.
 */
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { MediaError } from './errors.js';

const require = createRequire(import.meta.url);

export interface ToolPaths {
  ffmpeg: string;
  ffprobe: string;
}

/** FFMPEG_PATH / FFPROBE_PATH when set, else the binaries shipped by the npm installer packages. */
export function resolveToolPaths(overrides: { ffmpegPath?: string; ffprobePath?: string } = {}): ToolPaths {
  const shipped = (pkg: string): string => (require(pkg) as { path: string }).path;
  return {
    ffmpeg: overrides.ffmpegPath ?? shipped('@ffmpeg-installer/ffmpeg'),
    ffprobe: overrides.ffprobePath ?? shipped('@ffprobe-installer/ffprobe'),
  };
}

export class ToolError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(message);
    this.name = 'ToolError';
  }
}

/**
 * setTimeout's longest delay, 2^31-1 ms (24.8 days): Node fires a longer one after 1 ms, with only a warning. A
 * limit computed from a file's claimed duration (99 days in a damaged AVI header) must not become "at once".
 */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface RunOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  maxStdoutBytes?: number;
  /** Receives stdout as it comes (ffmpeg's `-progress pipe:1`) instead of keeping it: the result is then empty. */
  onStdout?: (chunk: Buffer) => void;
}

/** Runs a command to completion; resolves with stdout, rejects with ToolError (exit != 0), TIMEOUT or CANCELLED. */
export function runTool(bin: string, args: string[], opts: RunOptions): Promise<Buffer> {
  const maxStdout = opts.maxStdoutBytes ?? 64 * 1024 * 1024;
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(new MediaError('CANCELLED', 'the job was cancelled'));
      return;
    }
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    let ending: MediaError | ToolError | null = null;
    const stop = (why: MediaError | ToolError): void => {
      ending ??= why;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(
      () => stop(new MediaError('TIMEOUT', `${toolName(bin)} took longer than ${opts.timeoutMs} ms and was stopped`)),
      Math.min(opts.timeoutMs, MAX_TIMER_MS),
    );
    const onAbort = (): void => stop(new MediaError('CANCELLED', 'the job was cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => {
      if (opts.onStdout) {
        opts.onStdout(chunk);
        return;
      }
      outBytes += chunk.length;
      if (outBytes > maxStdout) stop(new ToolError(`${toolName(bin)} produced more than ${maxStdout} bytes`, null, ''));
      else out.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      // Keep the tail only: the last lines say what went wrong.
      err = (err + chunk.toString('utf8')).slice(-8192);
    });
    child.on('error', (e) => {
      ending ??= new ToolError(`could not run ${bin}: ${e.message}`, null, '');
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (ending) reject(ending);
      else if (signal) {
        // Stopped from outside (a shutdown signalling the process group, the OOM killer): not the file's fault.
        reject(
          new MediaError('INTERNAL', `${toolName(bin)} was stopped by ${signal}`, {
            retryable: true,
            interrupted: true,
          }),
        );
      } else if (code !== 0) reject(new ToolError(`${toolName(bin)} exited with ${code}: ${lastLine(err)}`, code, err));
      else resolve(Buffer.concat(out));
    });
  });
}

function toolName(bin: string): string {
  return bin.split('/').pop() ?? bin;
}

/** The last line a tool printed, without a leading file path (users need the reason, not our folder layout). */
export function lastLine(text: string): string {
  const lines = text.trim().split('\n').filter(Boolean);
  return (lines.at(-1) ?? '')
    .trim()
    .replace(/^(\/[^:]*|pipe:\d*):\s*/, '')
    .slice(0, 300);
}
