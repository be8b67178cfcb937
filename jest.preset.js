const nxPreset = require('@nx/jest/preset').default;

module.exports = {
  ...nxPreset,
  collectCoverageFrom: ['src/**/*.ts', '!src/**/*.spec.ts', '!src/**/*.test.ts', '!src/generated/**', '!src/main.ts'],
  coverageReporters: ['text-summary', 'json-summary', 'lcov'],
};
