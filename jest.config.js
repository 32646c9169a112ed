/** @type {import('jest').Config} */
module.exports = {
  preset: 'ts-jest',
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  setupFiles: ['<rootDir>/test/setup.ts'],
  transform: {'^.+\\.ts$': ['ts-jest', {isolatedModules: true, diagnostics: false}]},
  testTimeout: 120000,
  // Two cores: two workers; each test file loads tfjs and the wasm backend once.
  maxWorkers: 2,
};
