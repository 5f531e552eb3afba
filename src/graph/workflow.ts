/**
 * The workflow's steps: the built-in ones (STEP_POLICY, routing.ts) and the plugin steps loaded from PLUGINS, each
 * after its anchor. Built once at start-up; a plugin that does not fit (an unknown anchor, a duplicate name, a cycle,
 * a file type its anchor never sees) stops start-up with a message naming its module. The graph, the dispatchers and
 * the workers ask it for a step's policy and successors, so a plugin step goes through the same code as a built-in.
 */
import { describeIssues, type Instructions } from '../lib/instructions.js';
import { FILE_TYPES, STEP_NAMES, type AnyStepName, type FileType, type StepName } from '../lib/types.js';
import { loadPlugins, PluginLoadError, type PluginStep } from '../plugins/load.js';
import { STEP_POLICY, type StepPolicy } from './policy.js';
import { BRANCHES, CHAINS } from './routing.js';

const isBuiltIn = (name: string): name is StepName => (STEP_NAMES as readonly string[]).includes(name);

/** The file types each built-in step runs for: validate and extractMetadata for all, the rest by branch and chain. */
function builtInFileTypes(): Map<StepName, FileType[]> {
  const out = new Map<StepName, FileType[]>([
    ['validate', [...FILE_TYPES]],
    ['extractMetadata', [...FILE_TYPES]],
  ]);
  for (const type of FILE_TYPES) {
    for (let steps: StepName[] = [...BRANCHES[type]]; steps.length > 0;) {
      const step = steps.shift()!;
      const types = out.get(step) ?? [];
      if (!types.includes(type)) out.set(step, [...types, type]);
      const next = CHAINS[step];
      if (next) steps = [...steps, next];
    }
  }
  return out;
}

export interface StepInfo {
  name: AnyStepName;
  queue: string;
  fileTypes: FileType[];
  /** The steps it runs after (one of them, by file type); none for validate. */
  after: AnyStepName[];
  optional: boolean;
  /** The module that defines it; null for a built-in step. */
  module: string | null;
}

export class Workflow {
  private readonly byName = new Map<string, PluginStep>();
  private readonly fileTypes = builtInFileTypes();
  private readonly pluginTypes = new Map<string, FileType[]>();
  /** Plugin steps by anchor, in the order of PLUGINS. */
  private readonly anchored = new Map<string, PluginStep[]>();

  constructor(readonly plugins: readonly PluginStep[] = []) {
    const problems: string[] = [];
    for (const p of plugins) {
      const twin = this.byName.get(p.name);
      if (twin) problems.push(`${p.module}: step ${p.name} is already defined by ${twin.module}`);
      else this.byName.set(p.name, p);
    }
    for (const p of this.byName.values()) {
      if (!isBuiltIn(p.after) && !this.byName.has(p.after))
        problems.push(`${p.module}: step ${p.name} comes after ${p.after}, which is no step (built-in or plugin)`);
      else this.anchored.set(p.after, [...(this.anchored.get(p.after) ?? []), p]);
    }
    if (problems.length === 0) {
      for (const p of this.byName.values()) {
        const problem = this.settleFileTypes(p, []);
        if (problem && !problems.includes(problem)) problems.push(problem);
      }
    }
    if (problems.length > 0) throw new PluginLoadError(problems);
  }

  /** Walks back to a built-in anchor: a cycle, or a file type the anchor never runs for, is a problem. */
  private settleFileTypes(p: PluginStep, path: string[]): string | null {
    if (this.pluginTypes.has(p.name)) return null;
    if (path.includes(p.name))
      return `${p.module}: steps ${[...path.slice(path.indexOf(p.name)), p.name].join(' → ')} form a cycle`;
    const anchor = this.byName.get(p.after);
    if (anchor) {
      const problem = this.settleFileTypes(anchor, [...path, p.name]);
      if (problem) return problem;
    }
    const anchorTypes = this.fileTypesOf(p.after as AnyStepName);
    const foreign = p.fileTypes.filter((t) => !anchorTypes.includes(t));
    if (foreign.length > 0)
      return `${p.module}: step ${p.name} runs for ${foreign.join(', ')}, but ${p.after} runs only for ${anchorTypes.join(', ')}`;
    this.pluginTypes.set(p.name, p.fileTypes);
    return null;
  }

  plugin(name: string): PluginStep | undefined {
    return this.byName.get(name);
  }

  /** Whether `name` is a step of this workflow (built-in or plugin). */
  has(name: string): name is AnyStepName {
    return isBuiltIn(name) || this.byName.has(name);
  }

  /** Every step: the built-in ones, then the plugins in the order of PLUGINS. */
  get steps(): AnyStepName[] {
    return [...STEP_NAMES, ...[...this.byName.values()].map((p) => p.name)];
  }

  /** Every task queue: the built-in ones, then those only plugins use. */
  queues(builtIn: readonly string[]): string[] {
    return [...new Set([...builtIn, ...[...this.byName.values()].map((p) => p.queue)])];
  }

  fileTypesOf(step: AnyStepName): FileType[] {
    return isBuiltIn(step) ? (this.fileTypes.get(step) ?? []) : (this.pluginTypes.get(step) ?? []);
  }

  policy(step: AnyStepName): StepPolicy {
    if (isBuiltIn(step)) return STEP_POLICY[step];
    const p = this.byName.get(step);
    if (!p) throw new Error(`no step ${step}`);
    // A plugin's TIMEOUT is one attempt used like any other failure: plugins mostly call out (a scanner, a service).
    return { queue: p.queue, required: !p.optional, timeoutMs: p.timeoutMs, attempts: p.attempts, retryTimeout: true };
  }

  /** The plugin steps that run after `step` for a file of `fileType` (every file type when null). */
  pluginsAfter(step: AnyStepName, fileType: FileType | null): AnyStepName[] {
    return (this.anchored.get(step) ?? [])
      .filter((p) => fileType === null || p.fileTypes.includes(fileType))
      .map((p) => p.name);
  }

  /** What runs after `step` for `fileType`: its chain's next built-in step, then the plugins anchored on it. */
  next(step: AnyStepName, fileType: FileType | null): AnyStepName[] {
    const chained = isBuiltIn(step) ? CHAINS[step] : undefined;
    const builtIn = chained && (fileType === null || this.fileTypesOf(chained).includes(fileType)) ? [chained] : [];
    return [...builtIn, ...this.pluginsAfter(step, fileType)];
  }

  /** Every step after `step`, for `fileType`: skipped together when `step` leaves them nothing to work on. */
  downstreamOf(step: AnyStepName, fileType: FileType | null): AnyStepName[] {
    const out: AnyStepName[] = [];
    for (let queue = this.next(step, fileType); queue.length > 0;) {
      const s = queue.shift()!;
      if (out.includes(s)) continue;
      out.push(s);
      queue = [...queue, ...this.next(s, fileType)];
    }
    return out;
  }

  describe(): StepInfo[] {
    const branched = new Set<string>(Object.values(BRANCHES).flat());
    return this.steps.map((name) => {
      const plugin = this.byName.get(name);
      const chained = (Object.entries(CHAINS) as [StepName, StepName][]).filter(([, n]) => n === name).map(([s]) => s);
      const after: AnyStepName[] = plugin
        ? [plugin.after as AnyStepName]
        : name === 'validate'
          ? []
          : name === 'extractMetadata'
            ? ['validate']
            : [...(branched.has(name) ? (['extractMetadata'] as const) : []), ...chained];
      const policy = this.policy(name);
      return {
        name,
        queue: policy.queue,
        fileTypes: this.fileTypesOf(name),
        after,
        optional: !policy.required,
        module: plugin?.module ?? null,
      };
    });
  }

  /**
   * What is wrong with a job's instructions for this workflow: a `skip` or `steps` entry that names no plugin step, or
   * options a plugin's schema refuses. Null when they fit.
   */
  instructionsProblem(instructions: Instructions | null): string | null {
    if (!instructions) return null;
    for (const name of instructions.skip ?? []) {
      if (!isBuiltIn(name) && !this.byName.has(name)) return `skip: ${name} is no step of this service`;
    }
    for (const [name, value] of Object.entries(instructions.steps ?? {})) {
      const p = this.byName.get(name);
      if (!p) return `steps.${name}: no plugin step is called ${name}`;
      const parsed = p.options?.safeParse(value);
      if (parsed && !parsed.success) {
        const issues = (parsed.error as { issues?: Parameters<typeof describeIssues>[0] })?.issues ?? [];
        return `steps.${name}: ${issues.length ? describeIssues(issues) : 'refused by the step'}`;
      }
    }
    return null;
  }
}

/** The workflow of the built-in steps only. */
export const BUILT_IN_WORKFLOW = new Workflow();

/** Loads PLUGINS and builds the workflow; throws PluginLoadError naming each module that does not fit. */
export async function loadWorkflow(config: { plugins: readonly string[] }): Promise<Workflow> {
  return config.plugins.length === 0 ? BUILT_IN_WORKFLOW : new Workflow(await loadPlugins(config.plugins));
}
