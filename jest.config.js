/** ESM jest: ts-jest compiles TypeScript; `nest-outbox` resolves to the library source, as the package name a user imports. */
export default {
  testEnvironment: 'node',
  extensionsToTreatAsEsm: ['.ts'],
  roots: ['<rootDir>/libs', '<rootDir>/apps', '<rootDir>/test', '<rootDir>/bench'],
  testMatch: ['**/*.spec.ts', '**/*.test.ts'],
  moduleNameMapper: {
    '^@nest-outbox/example-contracts$': '<rootDir>/libs/contracts/src/index.ts',
    '^nest-outbox$': '<rootDir>/libs/outbox/src/index.ts',
    '^nest-outbox/(health|dashboard)$': '<rootDir>/libs/outbox/src/$1.ts',
    '^(\\.{1,2}/.*)\\.js$': '$1',
  },
  transform: {
    '^.+\\.ts$': ['ts-jest', { useESM: true, tsconfig: '<rootDir>/tsconfig.json' }],
  },
  testTimeout: 60000,
};
