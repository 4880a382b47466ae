// Lint: @eslint/js and typescript-eslint recommended rules; formatting is Prettier's (eslint-config-prettier
// turns off the rules that would fight it). The library is held to more than the tests, apps and bench.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', 'node_modules/**', 'coverage/**', '.tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { ecmaVersion: 2023, sourceType: 'module', globals: globals.node },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // Nest's own types (Function for class constructors) make this one noise.
      '@typescript-eslint/no-unsafe-function-type': 'off',
      // Not consistent-type-imports: with emitDecoratorMetadata, a class "used only as a type" in a
      // constructor is what Nest injects by, and an `import type` of it breaks the injection.
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['libs/outbox/src/**/*.ts'],
    ignores: ['**/*.spec.ts'],
    rules: {
      // No `any` in the library: the public API is typed all the way down.
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'error',
      // Prettier wraps code at 120; strings and comments it cannot wrap are held to the same width.
      'max-len': ['error', { code: 120, ignoreUrls: true, ignoreRegExpLiterals: true }],
    },
  },
  {
    files: ['test/**/*.ts', '**/*.spec.ts', 'bench/**/*.ts', 'apps/**/*.ts'],
    rules: {
      // Raw SQL rows and driver results in tests and tools are typed loosely on purpose.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
);
