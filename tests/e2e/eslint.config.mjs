// ESLint for the consoles' JavaScript (src/fleetd/src/http/assets), run by .ci/run from the
// repository's top level: `tests/e2e/node_modules/.bin/eslint -c tests/e2e/eslint.config.mjs`.
// It lives here because ESLint comes from this directory's package.json (npm ci in .ci/deps).
import js from '@eslint/js';
import globals from 'globals';

export default [
  {
    files: ['src/fleetd/src/http/assets/**/*.js'],
    ...js.configs.recommended,
  },
  {
    files: ['src/fleetd/src/http/assets/**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'no-unused-vars': ['error', { args: 'after-used', caughtErrors: 'none' }],
      'no-undef': 'error',
    },
  },
];
