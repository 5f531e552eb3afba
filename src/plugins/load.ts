/**
 * Loads the modules named in PLUGINS and checks the shape of every step they export. Anything wrong stops start-up
 * with a PluginError naming the module and the problem; how the steps fit together (anchors, cycles, file types) is
 * checked where the graph is built (src/graph/workflow.ts).
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FILE_TYPES, PLUGIN_STEP_NAME, STEP_NAMES, type FileType, type PluginStepName } from '../lib/types.js';
import type { PluginContext, PluginInput, StepDefinition } from './define.js';

/** A step as the service keeps it: checked, with its defaults filled in and the module it came from. */
export interface PluginStep {
  name: PluginStepName;
  module: string;
  fileTypes: FileType[];
  after: string;
  queue: string;
  optional: boolean;
  timeoutMs: number;
  attempts: number;
  options?: { safeParse(value: unknown): { success: boolean; data?: unknown; error?: unknown } };
  run(input: PluginInput, ctx: PluginContext): Promise<unknown>;
}

export class PluginLoadError extends Error {
  constructor(problems: string[]) {
    super(`PLUGINS: start-up stopped:\n  - ${problems.join('\n  - ')}`);
    this.name = 'PluginLoadError';
  }
}

/** BullMQ queue names go into Redis keys: no `:`. */
export const QUEUE_NAME = /^[a-z][a-z0-9_-]{0,39}$/;
export const PLUGIN_LIMITS = { modules: 32, steps: 64, timeoutMs: 24 * 3_600_000, attempts: 10 } as const;
const KEYS = ['name', 'fileTypes', 'after', 'queue', 'optional', 'timeoutMs', 'attempts', 'options', 'run'];
const RESERVED = new Set<string>([...STEP_NAMES, 'finalize', 'review', '__start__', '__end__']);

/**
 * A path (`./plugins/scan.mjs`, `/opt/scan.js`), resolved from `cwd`, or a package name resolved from this
 * installation's node_modules.
 */
function specifierUrl(spec: string, cwd: string): string {
  const isPath = spec.startsWith('.') || path.isAbsolute(spec) || /\.(m?js|cjs|ts|mts)$/.test(spec);
  return isPath ? pathToFileURL(path.resolve(cwd, spec)).href : spec;
}

/** Every step the modules export, in the order of PLUGINS; throws PluginLoadError naming every bad module. */
export async function loadPlugins(specs: readonly string[], cwd = process.cwd()): Promise<PluginStep[]> {
  const problems: string[] = [];
  const steps: PluginStep[] = [];
  for (const spec of specs) {
    let mod: { default?: unknown };
    try {
      mod = (await import(specifierUrl(spec, cwd))) as { default?: unknown };
    } catch (err) {
      problems.push(`${spec}: could not be loaded: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      continue;
    }
    const exported = mod.default;
    const defs = Array.isArray(exported) ? (exported as unknown[]) : exported === undefined ? [] : [exported];
    if (defs.length === 0) {
      problems.push(`${spec}: exports nothing (its default export must be a step definition or an array of them)`);
      continue;
    }
    defs.forEach((def, i) => {
      const checked = checkStep(def, spec);
      if (typeof checked === 'string') problems.push(`${spec}${defs.length > 1 ? ` [${i}]` : ''}: ${checked}`);
      else steps.push(checked);
    });
  }
  if (steps.length > PLUGIN_LIMITS.steps) problems.push(`at most ${PLUGIN_LIMITS.steps} plugin steps in all`);
  if (problems.length > 0) throw new PluginLoadError(problems);
  return steps;
}

const wholeIn = (v: unknown, min: number, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;

/** The step, checked and completed, or what is wrong with it. */
export function checkStep(def: unknown, module: string): PluginStep | string {
  if (typeof def !== 'object' || def === null) return 'a step definition must be an object';
  const d = def as Partial<Record<keyof StepDefinition, unknown>>;
  const unknown = Object.keys(d).filter((k) => !KEYS.includes(k));
  if (unknown.length > 0) return `unknown properties ${unknown.join(', ')} (known: ${KEYS.join(', ')})`;
  const name = d.name;
  if (typeof name !== 'string' || !PLUGIN_STEP_NAME.test(name))
    return `name ${JSON.stringify(name)}: a letter, then letters, digits and _ (at most 48)`;
  const where = `step ${name}`;
  if (RESERVED.has(name)) return `${where}: the name is a built-in step's`;
  const fileTypes = d.fileTypes;
  if (
    !Array.isArray(fileTypes) ||
    fileTypes.length === 0 ||
    fileTypes.some((t) => !(FILE_TYPES as readonly unknown[]).includes(t))
  )
    return `${where}: fileTypes must be a non-empty list of ${FILE_TYPES.join(', ')}`;
  if (typeof d.after !== 'string' || d.after.length === 0 || d.after.length > 64)
    return `${where}: after must name the step it follows`;
  if (typeof d.queue !== 'string' || !QUEUE_NAME.test(d.queue))
    return `${where}: queue must be a queue name (lower-case letters, digits, _ and -, at most 40)`;
  if (d.optional !== undefined && typeof d.optional !== 'boolean') return `${where}: optional must be true or false`;
  if (d.timeoutMs !== undefined && !wholeIn(d.timeoutMs, 1, PLUGIN_LIMITS.timeoutMs))
    return `${where}: timeoutMs must be a whole number of milliseconds from 1 to ${PLUGIN_LIMITS.timeoutMs}`;
  if (d.attempts !== undefined && !wholeIn(d.attempts, 1, PLUGIN_LIMITS.attempts))
    return `${where}: attempts must be a whole number from 1 to ${PLUGIN_LIMITS.attempts}`;
  const options = d.options as PluginStep['options'] | undefined;
  if (options !== undefined && typeof options?.safeParse !== 'function')
    return `${where}: options must be a zod schema`;
  if (typeof d.run !== 'function') return `${where}: run must be a function (input, ctx) => Promise<result>`;
  return {
    name: name as PluginStepName,
    module,
    fileTypes: [...new Set(fileTypes as FileType[])],
    after: d.after,
    queue: d.queue,
    optional: d.optional ?? false,
    timeoutMs: d.timeoutMs ?? 60_000,
    attempts: d.attempts ?? 3,
    ...(options && { options }),
    run: d.run as PluginStep['run'],
  };
}
