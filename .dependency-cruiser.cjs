/**
 * Imports point one way: server/cli -> service -> queue/store/graph -> nodes -> ai -> lib. Nodes never import server, queue,
 * store or graph code; the models in ai know nothing of steps; lib imports nothing of ours but lib.
 */
module.exports = {
  forbidden: [
    { name: 'no-circular', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'lib-is-a-leaf',
      severity: 'error',
      from: { path: '^src/lib/' },
      to: { path: '^src/(?!lib/)' },
    },
    {
      name: 'nodes-only-use-lib',
      severity: 'error',
      from: { path: '^src/nodes/' },
      to: { path: '^src/(graph|store|queue|service|server|cli)/|^src/(runtime|studio)\\.ts$' },
    },
    {
      name: 'ai-only-uses-lib',
      severity: 'error',
      from: { path: '^src/ai/' },
      to: { path: '^src/(nodes|graph|store|queue|service|server|cli)/|^src/(runtime|studio)\\.ts$' },
    },
    {
      name: 'graph-below-service',
      severity: 'error',
      from: { path: '^src/graph/' },
      to: { path: '^src/(store|queue|service|server|cli)/|^src/(runtime|studio)\\.ts$' },
    },
    {
      name: 'store-below-service',
      severity: 'error',
      from: { path: '^src/store/' },
      to: { path: '^src/(graph|queue|service|server|cli)/|^src/(runtime|studio)\\.ts$' },
    },
    {
      // Nothing outside src/store knows which database runs: it opens its state through src/store/index.ts.
      name: 'store-backends-are-private',
      severity: 'error',
      from: { path: '^src/(?!store/)' },
      to: { path: '^src/store/(sqlite|postgres)/' },
    },
    {
      name: 'queue-not-server',
      severity: 'error',
      from: { path: '^src/queue/' },
      to: { path: '^src/(service|server|cli)/' },
    },
    {
      name: 'service-not-server',
      severity: 'error',
      from: { path: '^src/service/' },
      to: { path: '^src/(server|cli)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'] },
  },
};
