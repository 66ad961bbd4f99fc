'use strict';
// A minimal action server speaking OpenWhisk's runtime protocol on port 8080.
const http = require('http');
const SENTINEL = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX\n';
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    let reply = { OK: true };
    if (req.url === '/run') {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}');
      console.log('blackbox got ' + JSON.stringify(body.value));
      reply = { echo: body.value, image: 'whisk/blackbox-echo:1' };
      process.stdout.write(SENTINEL);
      process.stderr.write(SENTINEL);
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(reply));
  });
}).listen(8080, '0.0.0.0');
