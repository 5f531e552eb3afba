/**
 * The deployment files against the code, without Docker: compose.yaml's app services start roles the CLI knows, set
 * only variables src/config.ts reads (with values it accepts), share Redis, the database and DATA_DIR, and the api's
 * health check calls a route the API serves; the Dockerfile builds in stages, ships production dependencies with
 * their native parts, runs as a non-root user and copies paths that exist. A renamed role, variable or folder fails
 * here rather than at `docker compose up`.

 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { describe, expect, test } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, QUEUE_NAMES, type Config } from '../src/config.js';
import { ROLES } from '../src/service.js';
import { ROOT } from './helpers.js';

type Yaml = string | number | boolean | null | Yaml[] | YamlMap;
interface YamlMap {
  [key: string]: Yaml;
}

const isMap = (value: Yaml | undefined): value is YamlMap =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function asMap(value: Yaml | undefined, what: string): YamlMap {
  if (!isMap(value)) throw new Error(`${what} is not a mapping`);
  return value;
}

/** A scalar as compose passes it on (`PORT: 3000` is "3000"); a collection where a scalar belongs is an error. */
function text(value: Yaml | undefined, what: string): string {
  if (typeof value === 'object' && value !== null) throw new Error(`${what} is not a scalar`);
  return String(value);
}

/** A sequence of scalars, or a single scalar as a sequence of one. */
const texts = (value: Yaml | undefined, what: string): string[] =>
  Array.isArray(value) ? value.map((v) => text(v, what)) : [text(value, what)];

// --- compose.yaml -----------------------------------------------------------------------------------------------------

const SAMPLE = 'sample-value-0123456789abcdef';
const INTERPOLATION = /\$\$|\$\{([A-Za-z_]\w*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_]\w*)/g;

function interpolate(value: Yaml, set: ReadonlySet<string>): Yaml {
  if (Array.isArray(value)) return value.map((v) => interpolate(v, set));
  if (isMap(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, set)]));
  if (typeof value !== 'string') return value;
  return value.replace(INTERPOLATION, (whole, braced?: string, op?: string, arg?: string, bare?: string) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare)!;
    const isSet = set.has(name);
    if (op?.endsWith('-')) return isSet ? SAMPLE : (arg ?? '');
    if (op?.endsWith('+')) return isSet ? (arg ?? '') : '';
    return isSet ? SAMPLE : '';
  });
}

function readCompose(): YamlMap {
  const source = fs.readFileSync(path.join(ROOT, 'compose.yaml'), 'utf8');
  const required = new Set<string>();
  for (const [whole, braced, op, , bare] of source.matchAll(INTERPOLATION)) {
    if (whole !== '$$' && (op === undefined || op.endsWith('?'))) required.add((braced ?? bare)!);
  }
  return asMap(interpolate(parse(source, { merge: true }) as Yaml, required), 'compose.yaml');
}

const compose = readCompose();
const services = asMap(compose.services, 'services');
/** The services built from this repository: the ones that run media-orchestrator. */
const appServices = Object.entries(services)
  .map(([name, s]) => [name, asMap(s, `services.${name}`)] as const)
  .filter(([, s]) => s.build !== undefined);

/** The environment compose gives a service (mapping or `KEY=VALUE` list; a bare KEY comes from the shell: unset). */
function serviceEnv(service: YamlMap): Record<string, string> {
  const env = service.environment ?? {};
  const pairs: [string, Yaml][] = Array.isArray(env)
    ? env.map((e) => text(e, 'environment').split(/=(.*)/s, 2) as [string, string])
    : Object.entries(asMap(env, 'environment'));
  return Object.fromEntries(
    pairs.filter(([, v]) => v !== null && v !== undefined).map(([k, v]) => [k, text(v, `environment.${k}`)]),
  );
}

/** `start --role api` as a string or a list, checked the way `media-orchestrator start` parses it. */
function startCommand(service: YamlMap): { command: string; role: string; queues: string | undefined } {
  const command = service.command;
  const args = Array.isArray(command) ? texts(command, 'command') : text(command, 'command').trim().split(/\s+/);
  const [name = '', ...rest] = args;
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: { role: { type: 'string', default: 'all' }, queues: { type: 'string' } },
  });
  return { command: name, role: values.role, queues: values.queues };
}

// --- Dockerfile -------------------------------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions by stage. A line ending in `\` continues; comment lines (parser directives too) are skipped. */
function readDockerfile(): Stage[] {
  const source = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const stages: Stage[] = [];
  let pending = '';
  for (const raw of source.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && pending === '')) continue;
    pending += `${line.replace(/\\$/, '')} `;
    if (line.endsWith('\\')) continue;
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(pending.trim()) ?? [];
    pending = '';
    const instruction = { keyword: keyword.toUpperCase(), args };
    if (instruction.keyword === 'FROM') stages.push({ name: /\sAS\s+(\S+)$/i.exec(args)?.[1], instructions: [] });
    else if (stages.length === 0) throw new Error(`Dockerfile: ${keyword} before FROM`);
    else stages.at(-1)!.instructions.push(instruction);
  }
  return stages;
}

const stages = readDockerfile();
const finalStage = stages.at(-1)!;
const runs = (stage: Stage): string[] => stage.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args);

/** COPY and ADD: `--from` (a stage or image; undefined: the build context), the sources and the destination. */
function copies(stage: Stage): { from: string | undefined; sources: string[]; dest: string }[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')
    .map((i) => {
      const words = i.args.startsWith('[') ? (JSON.parse(i.args) as string[]) : i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)! };
    });
}

/** The stage's working directory where an instruction runs (WORKDIR is relative to the one before it). */
function workdirs(stage: Stage): string[] {
  let dir = '/';
  return stage.instructions.map((i) => (i.keyword === 'WORKDIR' ? (dir = path.posix.resolve(dir, i.args)) : dir));
}

/**
 * Where each COPY of the final stage puts its sources in the image: a folder's contents become the destination; a file
 * copied into a folder (`dest/`, or one of several sources) keeps its name. Whether a source from another stage is a
 * folder is not known here: one without an extension is taken to be.
 */
function finalImagePaths(): { path: string; from: string | undefined; source: string }[] {
  const dirs = workdirs(finalStage);
  const all = copies(finalStage);
  let copyIndex = 0;
  return finalStage.instructions.flatMap((instruction, i) => {
    if (instruction.keyword !== 'COPY' && instruction.keyword !== 'ADD') return [];
    const { from, sources, dest } = all[copyIndex++]!;
    const target = path.posix.resolve(dirs[i]!, dest);
    return sources.map((source) => {
      const isFolder =
        from === undefined
          ? fs.statSync(path.join(ROOT, source), { throwIfNoEntry: false })?.isDirectory() === true
          : path.posix.extname(source) === '';
      const intoFolder = !isFolder && (dest.endsWith('/') || sources.length > 1);
      return { path: intoFolder ? path.posix.join(target, path.posix.basename(source)) : target, from, source };
    });
  });
}

/** `ENV A=1 B=2` (and the older `ENV A 1`) of a stage. */
function imageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { keyword, args } of stage.instructions) {
    if (keyword !== 'ENV') continue;
    if (!args.includes('=')) {
      const [name = '', ...value] = args.split(/\s+/);
      env[name] = value.join(' ');
      continue;
    }
    for (const [, name = '', value = ''] of args.matchAll(/([A-Za-z_]\w*)=("[^"]*"|\S*)/g)) {
      env[name] = value.replace(/^"(.*)"$/, '$1');
    }
  }
  return env;
}

/** .dockerignore's patterns (`*`, `**`, `?`, `!` exceptions; a match of a folder excludes what is in it). */
function dockerIgnored(relative: string): boolean {
  const file = path.join(ROOT, '.dockerignore');
  if (!fs.existsSync(file)) return false;
  let ignored = false;
  for (const raw of fs.readFileSync(file, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negated = line.startsWith('!');
    const pattern = path.posix.normalize(line.slice(negated ? 1 : 0).replace(/^\/+/, ''));
    const regex = new RegExp(
      `^${pattern
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) =>
          part === '**/' || part === '**'
            ? '(?:.*/)?'
            : part === '*'
              ? '[^/]*'
              : part === '?'
                ? '[^/]'
                : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
        )
        .join('')}(?:/.*)?$`,
    );
    if (regex.test(relative)) ignored = !negated;
  }
  return ignored;
}

/** The build context's files a COPY source names (a `*` in its last part is matched against that folder). */
function contextMatches(source: string): string[] {
  const relative = path.posix.normalize(source).replace(/^\.?\/+/, '');
  if (!relative.includes('*')) return fs.existsSync(path.join(ROOT, relative)) ? [relative] : [];
  const dir = path.posix.dirname(relative);
  const name = new RegExp(
    `^${path.posix
      .basename(relative)
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')}$`,
  );
  return fs.existsSync(path.join(ROOT, dir))
    ? fs
        .readdirSync(path.join(ROOT, dir))
        .filter((entry) => name.test(entry))
        .map((entry) => path.posix.join(dir, entry))
    : [];
}

/** Runs compose's health check test (`CMD node -e …`) against `url` instead of the one it names. */
function runHealthcheck(check: string[], origin: string, url: string): Promise<number> {
  const [form, program, ...args] = check;
  expect(form, 'the health check runs a program directly (CMD)').toBe('CMD');
  expect(program, 'the image has node, not curl or wget').toBe('node');
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      args.map((a) => a.replaceAll(origin, url)),
      { timeout: 30_000 },
      (err) => resolve(err ? (typeof err.code === 'number' ? err.code : -1) : 0),
    );
  });
}

describe('compose.yaml', () => {
  test('every app service starts a role the CLI knows; together they run the api, orchestrators and workers', () => {
    expect(appServices.length).toBeGreaterThanOrEqual(3);
    const roles = new Set<string>();
    for (const [name, service] of appServices) {
      // The image's ENTRYPOINT is bin/media-orchestrator: the command is its arguments.
      expect(service.entrypoint, name).toBeUndefined();
      const { command, role, queues } = startCommand(service);
      expect(command, name).toBe('start');
      expect(ROLES, `${name}: --role ${role}`).toContain(role);
      for (const queue of queues?.split(',') ?? []) expect(QUEUE_NAMES, `${name}: --queues`).toContain(queue.trim());
      roles.add(role);
    }
    // A split deployment needs each part: without an orchestrator (or workers) uploads wait forever.
    if (!roles.has('all')) expect([...roles].sort()).toEqual(['api', 'orchestrator', 'worker']);
  });

  test('every variable the app services set is one src/config.ts reads, and its value parses', () => {
    const image = imageEnv(finalStage);
    for (const [name, service] of appServices) {
      const env = serviceEnv(service);
      expect(Object.keys(env).length, name).toBeGreaterThan(0);
      for (const variable of Object.keys(env)) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      // The container's environment: the image's ENV, then the service's.
      expect(() => loadConfig({ ...image, ...env }), name).not.toThrow();
    }
  });

  const configs = (): [string, YamlMap, Config][] =>
    appServices.map(([name, s]) => [name, s, loadConfig({ ...imageEnv(finalStage), ...serviceEnv(s) })]);

  test('every app service uses the same Redis, database and queue prefix, and waits for them to be healthy', () => {
    const all = configs();
    for (const [name, service, config] of all) {
      // Unset, each container would start a Redis or SQLite file of its own and the roles would never meet.
      expect(config.redisUrl, `${name}: REDIS_URL`).toBeDefined();
      expect(config.database?.url, `${name}: DATABASE_URL`).toBeDefined();
      expect([config.redisUrl, config.database, config.queuePrefix], name).toEqual([
        all[0]![2].redisUrl,
        all[0]![2].database,
        all[0]![2].queuePrefix,
      ]);
      // The servers they name are services of this file, healthy before the app starts.
      const dependsOn = asMap(service.depends_on, `${name}: depends_on`);
      for (const url of [config.redisUrl!, config.database!.url]) {
        const host = new URL(url).hostname;
        expect(Object.keys(services), `${name}: ${url}`).toContain(host);
        expect(asMap(dependsOn[host], `${name}: depends_on.${host}`).condition, name).toBe('service_healthy');
        expect(asMap(services[host], host).healthcheck, `${host}: healthcheck`).toBeDefined();
      }
    }
    // The database's own credentials are the ones the app services connect with.
    const database = new URL(all[0]![2].database!.url);
    const postgres = serviceEnv(asMap(services[database.hostname], database.hostname));
    expect([database.username, decodeURIComponent(database.password), database.pathname.slice(1)]).toEqual([
      postgres.POSTGRES_USER,
      postgres.POSTGRES_PASSWORD,
      postgres.POSTGRES_DB ?? postgres.POSTGRES_USER,
    ]);
  });

  test('every app service mounts the same named volume at DATA_DIR', () => {
    const declared = Object.keys(asMap(compose.volumes, 'volumes'));
    const sources = new Set<string>();
    for (const [name, service, config] of configs()) {
      const mounts = (Array.isArray(service.volumes) ? service.volumes : []).map((v) => {
        if (isMap(v)) {
          return { source: text(v.source, 'source'), target: text(v.target, 'target'), readOnly: v.read_only === true };
        }
        const [source = '', target = '', mode = ''] = text(v, 'volume').split(':');
        return { source, target, readOnly: mode.split(',').includes('ro') };
      });
      const data = mounts.find((m) => m.target === config.dataDir);
      expect(data, `${name}: a volume at DATA_DIR (${config.dataDir})`).toBeDefined();
      expect(data!.readOnly, name).toBe(false);
      // A named volume, not a bind mount of one machine's folder.
      expect(declared, `${name}: ${data!.source}`).toContain(data!.source);
      sources.add(data!.source);
    }
    expect([...sources], 'uploads and artifacts are shared by all roles').toHaveLength(1);
  });

  test('the api listens where it is published, and its health check calls /readyz or /healthz', async () => {
    const apis = configs().filter(([, service]) => ['api', 'all'].includes(startCommand(service).role));
    expect(apis.length).toBeGreaterThan(0);
    for (const [name, service, config] of apis) {
      // HOST defaults to 127.0.0.1, which nothing outside the container reaches.
      expect(config.host, `${name}: HOST`).toBe('0.0.0.0');
      const published = (Array.isArray(service.ports) ? service.ports : []).map((p) =>
        Number(text(p, 'port').split('/')[0]!.split(':').at(-1)),
      );
      expect(published, `${name}: ports`).toContain(config.port);

      const healthcheck = asMap(service.healthcheck, `${name}: healthcheck`);
      const check = texts(healthcheck.test, `${name}: healthcheck.test`);
      const url = new URL(/https?:\/\/[^\s'"`)]+/.exec(check.join(' '))?.[0] ?? 'missing:');
      expect(['127.0.0.1', 'localhost'], `${name}: health check host`).toContain(url.hostname);
      expect(Number(url.port || 80), `${name}: health check port`).toBe(config.port);
      expect(['/readyz', '/healthz'], `${name}: health check path`).toContain(url.pathname);
      // The route is one the API registers.
      const serverSources = fs
        .readdirSync(path.join(ROOT, 'src', 'server'), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts'))
        .map((f) => fs.readFileSync(path.join(ROOT, 'src', 'server', f), 'utf8'));
      expect(
        serverSources.some((s) => s.includes(`'${url.pathname}'`)),
        url.pathname,
      ).toBe(true);

      // The check itself, against a stand-in API: healthy on 200, unhealthy on 503 and when nothing answers.
      let status = 200;
      const server = http.createServer((req, res) => {
        res.statusCode = req.url === url.pathname ? status : 404;
        res.end();
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const standIn = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      try {
        expect(await runHealthcheck(check, url.origin, standIn), 'ready').toBe(0);
        status = 503;
        expect(await runHealthcheck(check, url.origin, standIn), 'not ready').not.toBe(0);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
      expect(await runHealthcheck(check, url.origin, standIn), 'no answer').not.toBe(0);
    }
  });
});

describe('Dockerfile', () => {
  test('builds in stages and runs bin/media-orchestrator as a non-root user', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const keywords = finalStage.instructions.map((i) => i.keyword);
    const user = finalStage.instructions.findLast((i) => i.keyword === 'USER');
    expect(user, 'a USER in the final stage').toBeDefined();
    expect(['root', '0'], 'the last USER').not.toContain(user!.args.split(':')[0]);
    const userAt = keywords.lastIndexOf('USER');
    expect(userAt, 'USER before ENTRYPOINT').toBeLessThan(keywords.lastIndexOf('ENTRYPOINT'));
    expect(userAt, 'USER before CMD').toBeLessThan(keywords.lastIndexOf('CMD'));

    // Exec form (JSON): signals reach the process, no shell in between.
    const entrypoint = JSON.parse(
      finalStage.instructions.findLast((i) => i.keyword === 'ENTRYPOINT')!.args,
    ) as string[];
    const cmd = JSON.parse(finalStage.instructions.findLast((i) => i.keyword === 'CMD')!.args) as string[];
    const entryAt = keywords.lastIndexOf('ENTRYPOINT');
    const entry = path.posix.resolve(workdirs(finalStage)[entryAt]!, entrypoint[0]!);
    const bin = finalImagePaths().find((p) => p.from === undefined && entry.startsWith(`${p.path}/`));
    expect(bin, `${entry} is copied into the image`).toBeDefined();
    const script = path.join(ROOT, bin!.source, path.posix.relative(bin!.path, entry));
    expect(path.relative(ROOT, script)).toBe(path.join('bin', 'media-orchestrator'));
    // COPY keeps the mode: without the executable bit the container cannot start.
    expect(() => fs.accessSync(script, fs.constants.X_OK)).not.toThrow();
    expect(cmd[0]).toBe('start');
  });

  test('the final image has what the code reads at run time', () => {
    const workdir = workdirs(finalStage).at(-1)!;
    const placed = finalImagePaths();
    const at = (relative: string) => placed.find((p) => p.path === path.posix.join(workdir, relative));
    // package.json says "type": "module"; the dashboard's files are read from <root>/src/server/public.
    for (const needed of ['package.json', 'node_modules', 'dist', 'bin', 'src/server/public']) {
      expect(at(needed), needed).toBeDefined();
    }
    // dist/ comes from a stage that compiles it.
    const build = stages.find((s) => s.name === at('dist')!.from);
    expect(build, `the stage ${at('dist')!.from}`).toBeDefined();
    expect(runs(build!).some((r) => /npm run build|tsc\b/.test(r))).toBe(true);

    const env = imageEnv(finalStage);
    expect(env.NODE_ENV).toBe('production');
    const volumes = finalStage.instructions.filter((i) => i.keyword === 'VOLUME').flatMap((i) => i.args.split(/\s+/));
    expect(volumes, 'DATA_DIR is a volume').toContain(env.DATA_DIR);
  });

  test('node_modules has production dependencies only, with their native parts built', () => {
    // Installed in the final stage, or copied from the stage that installed it.
    const copied = finalImagePaths().find((p) => p.path.endsWith('/node_modules'));
    const stage = copied ? stages.find((s) => s.name === copied.from) : finalStage;
    expect(stage, `the stage node_modules comes from (${copied?.from})`).toBeDefined();
    const commands = runs(stage!);
    const production = commands.find((r) => /npm (ci|prune)\b[^&;|]*--omit=dev/.test(r));
    expect(production, 'npm ci --omit=dev or npm prune --omit=dev').toBeDefined();
    expect(
      commands.filter((r) => /npm (ci|install)\b/.test(r) && !/npm (ci|install)\b[^&;|]*--omit=dev/.test(r)),
      'no install of dev dependencies',
    ).toEqual([]);
    // Without install scripts, better-sqlite3 has no binary: `npm rebuild` must run them.
    if (/--ignore-scripts/.test(production!)) {
      const rebuild = commands.find((r) => /npm rebuild\b/.test(r));
      expect(rebuild, 'npm rebuild after --ignore-scripts').toBeDefined();
      const fromPackageJson = /allowScripts/.test(rebuild!);
      const packageJson = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
        allowScripts?: Record<string, boolean>;
      };
      expect(fromPackageJson ? packageJson.allowScripts?.['better-sqlite3'] : rebuild!.includes('better-sqlite3')).toBe(
        true,
      );
    }
    // The runtime user is not root: the npm installers' binaries (ffprobe's is mode 744) must be executable by all.
    const chmod = commands.find((r) => /chmod\s+(a|o|ugo)\+r?x/.test(r));
    expect(chmod, 'chmod of the ffmpeg and ffprobe binaries').toBeDefined();
    for (const tool of ['@ffmpeg-installer', '@ffprobe-installer']) expect(chmod).toContain(tool);
  });

  test('every path it copies from the build context exists and is not in .dockerignore', () => {
    const fromContext = stages.flatMap((s) => copies(s).filter((c) => c.from === undefined)).flatMap((c) => c.sources);
    expect(fromContext.length).toBeGreaterThan(0);
    for (const source of fromContext) {
      const matches = contextMatches(source);
      expect(matches, `${source} in the repository`).not.toEqual([]);
      for (const match of matches) expect(dockerIgnored(match), `${match} is in .dockerignore`).toBe(false);
    }
    // And what must stay out of the context does.
    for (const local of ['node_modules', 'dist', 'data', '.git', '.env']) {
      expect(dockerIgnored(local), `${local} in .dockerignore`).toBe(true);
    }
  });
});
