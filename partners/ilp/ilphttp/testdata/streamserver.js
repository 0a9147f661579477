// Runs @interledger/stream-receiver's StreamServer behind a small ILP over
// HTTP listener on 127.0.0.1 (synchronous mode, bearer token).
// Usage: node streamserver.js TOKEN ASSET_CODE ASSET_SCALE
// Prints one JSON line with its URL and STREAM credentials; then accepts
// every payment StreamServer offers and tallies it. When its standard input
// closes it prints {"total", "packets"} and exits.
'use strict'
const http = require('http')
const crypto = require('crypto')
const { StreamServer } = require('@interledger/stream-receiver')
const IlpPacket = require('ilp-packet')

const [token, code, scale] = process.argv.slice(2)
const server = new StreamServer({ serverSecret: crypto.randomBytes(32), serverAddress: 'test.jsreceiver' })
const creds = server.generateCredentials({ asset: { code, scale: +scale } })
let total = 0n
let packets = 0

const listener = http.createServer((req, res) => {
  if (req.method !== 'POST' || req.headers.authorization !== 'Bearer ' + token) {
    res.writeHead(401).end()
    return
  }
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    let reply
    try {
      const prepare = IlpPacket.deserializeIlpPrepare(Buffer.concat(chunks))
      const moneyOrReply = server.createReply(prepare)
      if (typeof moneyOrReply.accept === 'function') {
        total += BigInt(prepare.amount)
        packets++
        reply = moneyOrReply.accept()
      } else {
        reply = moneyOrReply
      }
    } catch (e) {
      res.writeHead(400).end(String(e && e.message))
      return
    }
    res.writeHead(200, { 'Content-Type': 'application/octet-stream' }).end(IlpPacket.serializeIlpReply(reply))
  })
})
listener.requestTimeout = 30000
listener.headersTimeout = 10000
listener.listen(0, '127.0.0.1', () => {
  const { port } = listener.address()
  process.stdout.write(
    JSON.stringify({ url: `http://127.0.0.1:${port}/ilp`, address: creds.ilpAddress, secret: creds.sharedSecret.toString('base64') }) + '\n'
  )
})
process.stdin.resume()
process.stdin.on('end', () => {
  process.stdout.write(JSON.stringify({ total: total.toString(), packets }) + '\n')
  listener.close()
  process.exit(0)
})
