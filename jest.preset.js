const nxPreset = require('@nx/jest/preset').default;

module.exports = {
  ...nxPreset,
  collectCoverageFrom: ['src/**/*.ts', '!src/**/*.spec.ts', '!src/**/*.test.ts', '!src/generated/**', '!src/main.ts'],
  coverageReporters: ['text-summary', 'json-summary', 'lcov'],
  // execa 9 is ESM only: tests get it as Node loads it (see tools/jest/execa.cjs).
  moduleNameMapper: { '^execa$': require('path').join(__dirname, 'tools/jest/execa.cjs') },
};
