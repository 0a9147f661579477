// Cross-checks stream.Server against @interledger/stream-receiver's
// StreamServer. Reads a JSON array of cases on stdin:
//   {op: "generate", serverSecret, paymentTag, asset}: generateCredentials.
//   {op: "reply", serverSecret, prepare}: createReply for an OER Prepare;
//     reports whether StreamServer would take the money and the tag.
'use strict'
const { StreamServer } = require('@interledger/stream-receiver')
const IlpPacket = require('ilp-packet')

const run = (c) => {
  const server = new StreamServer({ serverSecret: Buffer.from(c.serverSecret, 'hex'), serverAddress: 'test.credentials' })
  if (c.op === 'generate') {
    const creds = server.generateCredentials({ paymentTag: c.paymentTag || undefined, asset: c.asset || undefined })
    return { address: creds.ilpAddress, secret: creds.sharedSecret.toString('hex') }
  }
  const prepare = IlpPacket.deserializeIlpPrepare(Buffer.from(c.prepare, 'hex'))
  const r = server.createReply(prepare)
  if (typeof r.accept === 'function') {
    return { money: true, paymentTag: r.paymentTag || '', reply: IlpPacket.serializeIlpReply(r.accept()).toString('hex') }
  }
  return { money: false, code: r.code }
}

let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((c) => {
    try {
      return { ok: true, ...run(c) }
    } catch (e) {
      return { ok: false, error: String(e && e.message) }
    }
  })
  process.stdout.write(JSON.stringify(out))
})
