// The webpack build every service shares: a Node bundle of src/main.ts into
// dist/apps/<name>, node_modules left external. Each app's webpack.config.js
// calls this (Nx infers the build and serve targets from that file).
const { NxAppWebpackPlugin } = require('@nx/webpack/app-plugin');
const { join } = require('path');

module.exports = function nodeApp(name, options = {}) {
  return {
    output: {
      path: join(__dirname, '../../dist/apps', name),
      clean: true,
      ...(process.env.NODE_ENV !== 'production' && {
        devtoolModuleFilenameTemplate: '[absolute-resource-path]',
      }),
    },
    plugins: [
      new NxAppWebpackPlugin({
        target: 'node',
        compiler: 'tsc',
        main: './src/main.ts',
        tsConfig: './tsconfig.app.json',
        assets: [],
        optimization: false,
        outputHashing: 'none',
        generatePackageJson: true,
        sourceMap: true,
        // npm test type-checks every project once (scripts/typecheck.sh); checking
        // again inside each build only doubled the build's CPU time.
        skipTypeChecking: true,
        ...options,
      }),
    ],
  };
};
