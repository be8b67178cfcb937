// The CLI ships inside this repository (bin/sendense-ctl): no package.json of its own.
module.exports = require('../../tools/webpack/node-app')('cli', { generatePackageJson: false });
