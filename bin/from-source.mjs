// bin/media-orchestrator without a build: the TypeScript sources through tsx (resolved from here, wherever npm put it).
const { register } = await import('tsx/esm/api');
register();
await import('../src/cli/main.ts');
