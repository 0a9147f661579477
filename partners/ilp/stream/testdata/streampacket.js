// Cross-checks package stream against ilp-protocol-stream's packet and
// crypto modules. Reads a JSON array of cases on stdin, prints a JSON array
// of results.
//   {op: "decode", hex}: plaintext packet -> fields, and its re-serialization.
//   {op: "encode", packet}: packet description -> plaintext hex.
//   {op: "open", secret, data}: decryptAndDeserialize with the key derived
//     from secret -> fields; also the fulfillment and condition of data.
//   {op: "seal", secret, packet}: serializeAndEncrypt -> data, fulfillment,
//     condition.
'use strict'
const crypto = require('crypto')
const P = require('ilp-protocol-stream/dist/src/packet')
const C = require('ilp-protocol-stream/dist/src/crypto')

const describe = (pkt) => ({
  sequence: pkt.sequence.toString(),
  ilpPacketType: +pkt.ilpPacketType,
  prepareAmount: pkt.prepareAmount.toString(),
  frames: pkt.frames.map((f) => {
    const o = { type: f.type }
    for (const k of Object.getOwnPropertyNames(f)) {
      if (k === 'type' || k === 'name') continue
      const v = f[k]
      o[k] = Buffer.isBuffer(v) ? v.toString('hex') : String(v)
    }
    return o
  }),
})

const frame = (f) => {
  const b = (h) => Buffer.from(h, 'hex')
  switch (+f.type) {
    case 1: return new P.ConnectionCloseFrame(+f.errorCode, f.errorMessage)
    case 2: return new P.ConnectionNewAddressFrame(f.sourceAccount)
    case 3: return new P.ConnectionMaxDataFrame(f.maxOffset)
    case 4: return new P.ConnectionDataBlockedFrame(f.maxOffset)
    case 5: return new P.ConnectionMaxStreamIdFrame(f.maxStreamId)
    case 6: return new P.ConnectionStreamIdBlockedFrame(f.maxStreamId)
    case 7: return new P.ConnectionAssetDetailsFrame(f.sourceAssetCode, +f.sourceAssetScale)
    case 16: return new P.StreamCloseFrame(f.streamId, +f.errorCode, f.errorMessage)
    case 17: return new P.StreamMoneyFrame(f.streamId, f.shares)
    case 18: return new P.StreamMaxMoneyFrame(f.streamId, f.receiveMax, f.totalReceived)
    case 19: return new P.StreamMoneyBlockedFrame(f.streamId, f.sendMax, f.totalSent)
    case 20: return new P.StreamDataFrame(f.streamId, f.offset, b(f.data))
    case 21: return new P.StreamMaxDataFrame(f.streamId, f.maxOffset)
    case 22: return new P.StreamDataBlockedFrame(f.streamId, f.maxOffset)
    case 23: return new P.StreamReceiptFrame(f.streamId, b(f.receipt))
  }
  throw new Error('unknown frame type ' + f.type)
}

const build = (j) => new P.Packet(j.sequence, j.ilpPacketType, j.prepareAmount, j.frames.map(frame))

const run = async (c) => {
  switch (c.op) {
    case 'decode': {
      const pkt = P.Packet._deserializeUnencrypted(Buffer.from(c.hex, 'hex'))
      return { ...describe(pkt), hex: pkt._serialize().toString('hex') }
    }
    case 'encode':
      return { hex: build(c.packet)._serialize().toString('hex') }
    case 'open': {
      const secret = Buffer.from(c.secret, 'hex')
      const data = Buffer.from(c.data, 'hex')
      const pkt = await P.Packet.decryptAndDeserialize(await C.generatePskEncryptionKey(secret), data)
      const ful = await C.generateFulfillment(await C.generateFulfillmentKey(secret), data)
      return { ...describe(pkt), fulfillment: ful.toString('hex'), condition: crypto.createHash('sha256').update(ful).digest('hex') }
    }
    case 'seal': {
      const secret = Buffer.from(c.secret, 'hex')
      const data = await build(c.packet).serializeAndEncrypt(await C.generatePskEncryptionKey(secret))
      const ful = await C.generateFulfillment(await C.generateFulfillmentKey(secret), data)
      return {
        data: data.toString('hex'),
        encryptionKey: (await C.generatePskEncryptionKey(secret)).toString('hex'),
        fulfillmentKey: (await C.generateFulfillmentKey(secret)).toString('hex'),
        fulfillment: ful.toString('hex'),
        condition: crypto.createHash('sha256').update(ful).digest('hex'),
      }
    }
  }
  throw new Error('unknown op ' + c.op)
}

let input = ''
process.stdin.on('data', (d) => (input += d))
process.stdin.on('end', async () => {
  const out = []
  for (const c of JSON.parse(input)) {
    try {
      out.push({ ok: true, ...(await run(c)) })
    } catch (e) {
      out.push({ ok: false, error: String(e && e.message) })
    }
  }
  process.stdout.write(JSON.stringify(out))
})
