/**
 * A plugin step as a step function like the built-in ones: executeStep gives it its time limit, cancellation,
 * progress, staged artifacts and run record. What it throws with a code of its own fails the step with that code;
 * what it returns is checked to be small JSON and stored at `results.<name>`.
 */
import { MediaError } from '../lib/errors.js';
import { describeIssues } from '../lib/instructions.js';
import { PLUGIN_ERROR_CODE, type PluginErrorCode } from '../lib/types.js';
import type { PluginInput } from '../plugins/define.js';
import type { PluginStep } from '../plugins/load.js';
import type { StepFn } from './deps.js';

/** The most a plugin's result may hold, as JSON: the job document carries it everywhere (store, SSE, webhooks). */
export const MAX_PLUGIN_RESULT_BYTES = 64 * 1024;

/** The plugin steps by name, for createDeps. */
export function pluginStepFns(plugins: readonly PluginStep[]): ReadonlyMap<string, StepFn> {
  return new Map(plugins.map((p) => [p.name, pluginStepFn(p)]));
}

export function pluginStepFn(plugin: PluginStep): StepFn {
  return async (input, deps, ctx) => {
    const { jobId, fileType, fileInfo } = input;
    if (!fileType || !fileInfo)
      throw new MediaError('INTERNAL', `${plugin.name} ran before validate identified the file`);
    const raw = input.instructions?.steps?.[plugin.name] ?? {};
    let options: unknown = raw;
    if (plugin.options) {
      const parsed = plugin.options.safeParse(raw);
      if (!parsed.success) {
        const issues = (parsed.error as { issues?: Parameters<typeof describeIssues>[0] })?.issues ?? [];
        throw new MediaError('INVALID_INPUT', `steps.${plugin.name}: ${describeIssues(issues)}`);
      }
      options = parsed.data;
    }
    const pluginInput: PluginInput = {
      jobId,
      fileType,
      file: { path: input.file.path, name: fileInfo.name, mime: fileInfo.mime, size: fileInfo.size },
      results: structuredClone(input.results),
      options,
      attempt: ctx.attempt,
    };
    let value: unknown;
    try {
      value = await plugin.run(pluginInput, {
        signal: ctx.signal,
        log: ctx.log,
        progress: (fraction) => ctx.progress?.(fraction),
        artifacts: {
          produce: (name, write) => deps.artifacts.produce(jobId, name, write),
          readText: (name) => deps.artifacts.readText(jobId, name),
        },
      });
    } catch (err) {
      throw pluginFailure(err, ctx.signal);
    }
    const json = JSON.stringify(value ?? null);
    if (json === undefined || json.length > MAX_PLUGIN_RESULT_BYTES)
      throw new MediaError(
        'RESOURCE_LIMIT',
        `${plugin.name} returned more than ${MAX_PLUGIN_RESULT_BYTES} bytes of JSON: keep large output in an artifact`,
      );
    return { status: 'succeeded', results: { [plugin.name]: JSON.parse(json) as unknown } };
  };
}

/**
 * What a plugin's thrown value means: its own `code` (upper-case words) with its `retryable` flag (default: not
 * retried); once the step's signal has aborted (time limit, cancellation), the abort's own error; anything else is
 * an unexpected error, retried like a built-in step's.
 */
function pluginFailure(err: unknown, signal: AbortSignal): unknown {
  if (signal.aborted && signal.reason instanceof MediaError) return signal.reason;
  if (err instanceof MediaError) return err;
  const { code, retryable, message } = (err ?? {}) as { code?: unknown; retryable?: unknown; message?: unknown };
  if (typeof code === 'string' && PLUGIN_ERROR_CODE.test(code)) {
    const text = typeof message === 'string' && message ? message.slice(0, 2000) : code;
    return new MediaError(code as PluginErrorCode, text, { retryable: retryable === true, cause: err });
  }
  return err;
}
