module.exports = require('../../tools/webpack/node-app')('capture-agent');
