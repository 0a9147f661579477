// Cross-checks package cond against five-bells-condition. Reads a JSON
// array of cases on stdin, prints a JSON array of results.
//   {op: "fromPreimage", preimage: hex}: a PREIMAGE-SHA-256 fulfillment made
//     by five-bells-condition, in every form.
//   {op: "parseFulfillment", uri}: fromFulfillmentUri, reported in every form.
//   {op: "parseCondition", uri} / {op: "parseConditionBinary", hex}.
//   {op: "validate", fulfillment, condition}: validateFulfillment.
'use strict'
const cc = require('five-bells-condition')

const describeFulfillment = (f) => ({
  type: f.getTypeName(),
  preimage: f.preimage.toString('hex'),
  uri: f.serializeUri(),
  binary: f.serializeBinary().toString('hex'),
  conditionUri: f.getConditionUri(),
  conditionBinary: f.getConditionBinary().toString('hex'),
})

const describeCondition = (c) => ({
  type: c.getTypeName(),
  fingerprint: c.getHash().toString('hex'),
  cost: c.getCost(),
  uri: c.serializeUri(),
  binary: c.serializeBinary().toString('hex'),
})

const run = (c) => {
  switch (c.op) {
    case 'fromPreimage': {
      const f = new cc.PreimageSha256()
      f.setPreimage(Buffer.from(c.preimage, 'hex'))
      return describeFulfillment(f)
    }
    case 'parseFulfillment':
      return describeFulfillment(cc.fromFulfillmentUri(c.uri))
    case 'parseCondition': {
      const cond = cc.fromConditionUri(c.uri)
      cond.validate()
      return describeCondition(cond)
    }
    case 'parseConditionBinary':
      return describeCondition(cc.fromConditionBinary(Buffer.from(c.hex, 'hex')))
    case 'validate':
      return { valid: cc.validateFulfillment(c.fulfillment, c.condition) }
  }
  throw new Error('unknown op ' + c.op)
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
