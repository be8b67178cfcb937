// Jest's module loader cannot load ES modules in a CommonJS test run, and
// execa 9 is ESM only. Node itself can (require(esm), Node >= 20.19), which
// is also how the built services load it: hand the test the module as Node
// loads it. process.getBuiltinModule gives Node's own `module` (Jest's
// require('node:module') is its sandboxed copy). Mapped for every project
// in jest.preset.js.
module.exports = process.getBuiltinModule('module').createRequire(__filename)('execa');
