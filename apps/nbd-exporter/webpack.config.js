module.exports = require('../../tools/webpack/node-app')('nbd-exporter');
