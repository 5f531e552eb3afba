// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'dist/', 'coverage/', '.langgraph_api/', 'test-artifacts/', 'fuzz-out/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: {
          allowDefaultProject: [
            'bin/*',
            '*.cjs',
            'eslint.config.js',
            'src/queue/*.mjs',
            'src/store/sqlite/*.mjs',
            'test/fixtures/*.mjs',
            'test/fixtures/plugins/*.mjs',
            'examples/*/*.mjs',
            'src/server/public/*.js',
          ],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Node's process.env is read in src/config.ts only.
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through src/config.ts.' },
      ],
    },
  },
  {
    // Fastify plugins and handlers are async by contract, awaiting or not.
    files: ['src/server/**'],
    rules: { '@typescript-eslint/require-await': 'off' },
  },
  {
    files: ['src/config.ts', 'test/**', 'bench/**', 'fuzz/**', 'vitest.config.ts'],
    rules: { 'no-restricted-properties': 'off' },
  },
  {
    files: [
      'bin/*',
      '*.cjs',
      'eslint.config.js',
      'src/**/*.mjs',
      'test/fixtures/*.mjs',
      'test/fixtures/plugins/*.mjs',
      'examples/*/*.mjs',
      'src/server/public/*.js',
    ],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    // Plugins as users write them: plain ES modules run by Node.
    files: ['examples/*/*.mjs', 'test/fixtures/plugins/*.mjs'],
    languageOptions: {
      globals: { Buffer: 'readonly', setImmediate: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly' },
    },
  },
  {
    // Runs in the browser as a classic script.
    files: ['src/server/public/*.js'],
    languageOptions: {
      sourceType: 'script',
      globals: {
        window: 'readonly',
        document: 'readonly',
        location: 'writable',
        localStorage: 'readonly',
        fetch: 'readonly',
        FormData: 'readonly',
        URLSearchParams: 'readonly',
        EventSource: 'readonly',
        alert: 'readonly',
        console: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        mermaid: 'readonly',
      },
    },
  },
  {
    files: ['*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
  },
);
