module.exports = require('../../tools/webpack/node-app')('restore-service');
