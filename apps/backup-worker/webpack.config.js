module.exports = require('../../tools/webpack/node-app')('backup-worker');
