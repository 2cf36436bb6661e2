/** Unit tests (`*.spec.ts`) sit beside the code; end-to-end tests (`*.e2e-spec.ts`) in test/. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/src', '<rootDir>/libs', '<rootDir>/test'],
  testMatch: ['**/*.spec.ts', '**/*.e2e-spec.ts'],
  transform: {
    '^.+\\.ts$': ['@swc/jest', {
      jsc: {
        parser: { syntax: 'typescript', decorators: true },
        transform: { legacyDecorator: true, decoratorMetadata: true },
        target: 'es2022',
      },
      module: { type: 'commonjs' },
    }],
    // jose 6 is ESM-only. Jest's own module system can require() ES modules only under
    // node --experimental-vm-modules, so its files are compiled to CommonJS here instead.
    '/node_modules/jose/.+\\.js$': ['@swc/jest', {
      jsc: { parser: { syntax: 'ecmascript' }, target: 'es2022' },
      module: { type: 'commonjs' },
    }],
  },
  // Jest's default, except that jose (above) is transformed.
  transformIgnorePatterns: ['/node_modules/(?!jose/)', '\\.pnp\\.[^\\/]+$'],
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  testTimeout: 60000,
  maxWorkers: 2,
};
