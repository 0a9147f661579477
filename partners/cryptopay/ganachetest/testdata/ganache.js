// ganache.js runs a ganache server for the Go tests of package
// ganachetest: it listens on a free loopback port, prints {"port": N} as
// one line on stdout once it accepts requests, and exits when its stdin
// closes (so it never outlives the test process that started it).
//
//	node ganache.js '<ganache options as JSON>'
'use strict';
const ganache = require('ganache');

const options = JSON.parse(process.argv[2] || '{}');
const server = ganache.server(options);
server.listen(0, '127.0.0.1', (err) => {
  if (err) {
    process.stderr.write(`ganache: ${err.stack || err}\n`);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});

let closing = false;
function stop() {
  if (closing) return;
  closing = true;
  server.close().then(() => process.exit(0), () => process.exit(0));
}
process.stdin.on('end', stop);
process.stdin.on('error', stop);
process.stdin.resume();
process.on('SIGTERM', stop);
