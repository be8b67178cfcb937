import nx from '@nx/eslint-plugin';

/**
 * House rules, enforced (see ARCHITECTURE.md "Conventions"):
 * - apps may import libs, libs never apps (Nx tags type:app / type:lib);
 * - only libs/process runs external commands (node:child_process, execa);
 * - only libs/db touches the generated Prisma client and the MariaDB adapter;
 * - only libs/config reads process.env (tests, benches and scripts may).
 */
const childProcess = {
  paths: [
    { name: 'node:child_process', message: 'Run commands through @sendense/process (argument arrays, timeouts, stderr in errors).' },
    { name: 'child_process', message: 'Run commands through @sendense/process (argument arrays, timeouts, stderr in errors).' },
    { name: 'execa', message: 'Only libs/process imports execa: use @sendense/process.' },
  ],
};
const prismaClient = {
  patterns: [
    { group: ['**/generated', '**/generated/**'], message: 'Only libs/db imports the generated Prisma client: use a repository from @sendense/db.' },
    { group: ['@prisma/client', '@prisma/client/*', '@prisma/adapter-mariadb'], message: 'Only libs/db talks to Prisma: use a repository from @sendense/db.' },
  ],
};
const restrictedImports = (...parts) => ['error', { paths: parts.flatMap((p) => p.paths ?? []), patterns: parts.flatMap((p) => p.patterns ?? []) }];
const tests = [
  '**/*.spec.ts',
  '**/*.test.ts',
  'tests/**',
  'bench/**',
  'scripts/**',
  'tools/**',
  'prisma/**',
  '**/testing/**',
  '**/test/**',
  '*.ts',
  '*.cts',
  '*.mjs',
];

export default [
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  ...nx.configs['flat/javascript'],
  {
    ignores: [
      '**/dist',
      '**/out-tsc',
      '**/node_modules',
      'libs/db/src/generated/**',
      'coverage/**',
      'tools/vcsim/bin/**',
      'tools/vcsim/gopath/**',
      '.nx/**',
      '.sendense/**',
      'tests/artifacts/**',
    ],
  },
  {
    files: ['**/*.ts', '**/*.tsx', '**/*.js', '**/*.jsx'],
    rules: {
      '@nx/enforce-module-boundaries': [
        'error',
        {
          enforceBuildableLibDependency: true,
          allow: ['^.*/eslint(\\.base)?\\.config\\.[cm]?[jt]s$'],
          depConstraints: [
            { sourceTag: 'type:app', onlyDependOnLibsWithTags: ['type:lib'] },
            { sourceTag: 'type:lib', onlyDependOnLibsWithTags: ['type:lib'] },
          ],
        },
      ],
      'no-restricted-imports': restrictedImports(childProcess, prismaClient),
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Settings come from @sendense/config (validated once at start, injected).' },
      ],
    },
  },
  // Each app's webpack.config.js requires the shared setup in tools/webpack by path.
  { files: ['apps/*/webpack.config.js'], rules: { '@nx/enforce-module-boundaries': 'off' } },
  {
    // Apps reach tables through libs/db repositories, never `prisma.<model>` on a client they were handed
    // ($disconnect and the like stay allowed: an app owns its client's lifecycle).
    files: ['apps/**/*.ts'],
    ignores: tests,
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[object.name='prisma'][property.name=/^[a-z]/]",
          message: 'Use a repository from @sendense/db (libs/db/src/repositories), not prisma.<model>.',
        },
        {
          selector: "MemberExpression[object.property.name='prisma'][property.name=/^[a-z]/]",
          message: 'Use a repository from @sendense/db (libs/db/src/repositories), not prisma.<model>.',
        },
      ],
    },
  },

  { files: ['libs/process/**'], rules: { 'no-restricted-imports': restrictedImports(prismaClient) } },
  { files: ['libs/db/**'], rules: { 'no-restricted-imports': restrictedImports(childProcess) } },
  { files: ['libs/config/**'], rules: { 'no-restricted-properties': 'off' } },
  {
    // Tests, benches and scripts set up whole systems: they may read the environment,
    // spawn helpers and use non-null assertions on values they just asserted.
    files: tests,
    rules: {
      'no-restricted-properties': 'off',
      'no-restricted-imports': restrictedImports(prismaClient),
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: ['libs/db/**/*.spec.ts', 'libs/db/src/testing/**'], rules: { 'no-restricted-imports': 'off' } },
  {
    // Small units (issue 13): no function in an app over 80 lines, blank lines and comments not counted.
    // Tests are exempt (a describe block holds its cases).
    files: [
      'apps/capture-agent/src/**/*.ts',
      'apps/cli/**/*.ts',
      'apps/console/**/*.ts',
      'apps/console/**/*.tsx',
      'apps/api-gateway/src/**/*.ts',
      'apps/backup-worker/src/**/*.ts',
      'apps/nbd-exporter/src/**/*.ts',
      'apps/restore-service/src/**/*.ts',
    ],
    ignores: tests,
    rules: { 'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true }] },
  },
];
