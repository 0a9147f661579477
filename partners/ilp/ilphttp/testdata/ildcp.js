// Asks a peer for its configuration with ilp-protocol-ildcp's fetch over
// ILP over HTTP. Usage: node ildcp.js URL TOKEN. Prints the configuration.
'use strict'
const ildcp = require('ilp-protocol-ildcp')
const [url, token] = process.argv.slice(2)
const sendData = async (data) => {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/ilp+octet-stream', Authorization: 'Bearer ' + token },
    body: data,
    signal: AbortSignal.timeout(30000),
  })
  if (res.status !== 200) throw new Error('HTTP ' + res.status)
  return Buffer.from(await res.arrayBuffer())
}
ildcp
  .fetch(sendData)
  .then((cfg) => process.stdout.write(JSON.stringify(cfg) + '\n'))
  .catch((e) => {
    process.stdout.write(JSON.stringify({ error: String(e && e.message) }) + '\n')
    process.exitCode = 1
  })
