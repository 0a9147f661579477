// A customer's DFSP written on the reference implementations: it pays an
// invoice on the switch's ledger with a condition and fulfillment made by
// five-bells-condition and an ILPv4 Prepare made by ilp-packet in the
// credit's memo (naming the invoice by address only), over HTTPS.
//   node dfsp.js <ledgerURL> <invoiceURL> <user> <password> [mode]
// mode: "pay" (default), "wrong" (fulfil with another preimage).
// Prints a JSON object: each call's status and body, and the fulfillment.
'use strict'
const crypto = require('crypto')
const cc = require('five-bells-condition')
const IlpPacket = require('ilp-packet')

const [ledger, invoiceUrl, user, pass, mode = 'pay'] = process.argv.slice(2)
const auth = 'Basic ' + Buffer.from(user + ':' + pass).toString('base64')

const call = async (method, url, body) => {
  const res = await fetch(url, {
    method,
    headers: body ? { 'Content-Type': 'application/json', Authorization: auth } : { Authorization: auth },
    body: body ? JSON.stringify(body) : undefined,
  })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch (e) { json = text }
  return { status: res.status, body: json }
}

const fulfillmentOf = (preimage) => {
  const f = new cc.PreimageSha256()
  f.setPreimage(preimage)
  return f
}

const main = async () => {
  const out = {}
  const inv = await call('GET', invoiceUrl)
  out.invoice = inv
  const id = invoiceUrl.slice(invoiceUrl.lastIndexOf('/') + 1)
  const rcv = await call('GET', ledger + '/receivers/' + id)
  out.receiver = rcv
  const q = await call('GET', ledger + '/quoteDestinationAmount?destinationAmount=' + inv.body.amount + '&receiver=' + encodeURIComponent(ledger + '/receivers/' + id))
  out.quote = q

  const preimage = crypto.randomBytes(32)
  const f = fulfillmentOf(preimage)
  const expiresAt = new Date(Date.now() + 30000)
  const minor = Number(inv.body.amount.replace('.', ''))
  const packet = IlpPacket.serializeIlpPrepare({
    amount: String(minor),
    executionCondition: crypto.createHash('sha256').update(preimage).digest(),
    expiresAt,
    destination: rcv.body.address,
    data: Buffer.alloc(0),
  })
  const transferId = crypto.randomUUID()
  out.transferId = transferId
  out.prepare = await call('PUT', ledger + '/ledger/transfers/' + transferId, {
    id: ledger + '/ledger/transfers/' + transferId,
    ledger: ledger + '/ledger',
    debits: [{ account: ledger + '/ledger/accounts/' + user, amount: q.body.sourceAmount, authorized: true }],
    credits: [{ account: inv.body.account, amount: inv.body.amount, memo: { ilp: packet.toString('base64') } }],
    execution_condition: f.getConditionUri(),
    expires_at: expiresAt.toISOString(),
  })
  const sent = mode === 'wrong' ? fulfillmentOf(crypto.randomBytes(32)) : f
  out.fulfillment = sent.serializeUri()
  out.condition = f.getConditionUri()
  for (;;) {
    out.fulfil = await call('PUT', ledger + '/ledger/transfers/' + transferId + '/fulfillment', {
      transferId, fulfillment: sent.serializeUri(), condition: f.getConditionUri(),
    })
    if (out.fulfil.status !== 503) break
    await new Promise((r) => setTimeout(r, 200))
  }
  out.transfer = await call('GET', ledger + '/ledger/transfers/' + transferId)
  // The ledger's fulfillment must validate against the condition with
  // the reference implementation.
  if (out.transfer.body.state === 'executed') {
    const got = await call('GET', ledger + '/ledger/transfers/' + transferId + '/fulfillment')
    out.storedFulfillment = got.body
    out.valid = cc.validateFulfillment(got.body, f.getConditionUri())
  }
  process.stdout.write(JSON.stringify(out))
}

main().catch((e) => { console.error(e); process.exit(1) })
