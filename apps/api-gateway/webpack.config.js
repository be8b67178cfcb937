module.exports = require('../../tools/webpack/node-app')('api-gateway');
