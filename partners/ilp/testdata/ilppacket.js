// Cross-checks the Go ILPv4 codec against ilp-packet. Reads a JSON array of
// cases on stdin and prints a JSON array of results:
//   {op: "decode", hex}   -> deserializeIlpPacket, then serializeIlpPacket of
//                            what it read; reports the fields and the hex.
//   {op: "encode", packet} -> serializeIlpPacket of the JSON description.
'use strict'
const IlpPacket = require('ilp-packet')

const fields = (type, p) => {
  switch (type) {
    case IlpPacket.Type.TYPE_ILP_PREPARE:
      return {
        type,
        amount: p.amount,
        expiresAt: p.expiresAt.toISOString(),
        executionCondition: p.executionCondition.toString('hex'),
        destination: p.destination,
        data: p.data.toString('hex'),
      }
    case IlpPacket.Type.TYPE_ILP_FULFILL:
      return { type, fulfillment: p.fulfillment.toString('hex'), data: p.data.toString('hex') }
    default:
      return { type, code: p.code, triggeredBy: p.triggeredBy, message: p.message, data: p.data.toString('hex') }
  }
}

const fromJSON = (j) => {
  switch (j.type) {
    case 12:
      return {
        type: 12,
        data: {
          amount: j.amount,
          expiresAt: new Date(j.expiresAt),
          executionCondition: Buffer.from(j.executionCondition, 'hex'),
          destination: j.destination,
          data: Buffer.from(j.data, 'hex'),
        },
      }
    case 13:
      return { type: 13, data: { fulfillment: Buffer.from(j.fulfillment, 'hex'), data: Buffer.from(j.data, 'hex') } }
    default:
      return {
        type: 14,
        data: { code: j.code, triggeredBy: j.triggeredBy, message: j.message, data: Buffer.from(j.data, 'hex') },
      }
  }
}

let input = ''
process.stdin.on('data', (c) => (input += c))
process.stdin.on('end', () => {
  const out = JSON.parse(input).map((c) => {
    try {
      if (c.op === 'decode') {
        const pkt = IlpPacket.deserializeIlpPacket(Buffer.from(c.hex, 'hex'))
        const again = IlpPacket.serializeIlpPacket(pkt)
        return { ok: true, fields: fields(pkt.type, pkt.data), hex: again.toString('hex') }
      }
      return { ok: true, hex: IlpPacket.serializeIlpPacket(fromJSON(c.packet)).toString('hex') }
    } catch (e) {
      return { ok: false, error: String(e && e.message) }
    }
  })
  process.stdout.write(JSON.stringify(out))
})
