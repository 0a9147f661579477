// Drives the switch's Open Payments authorisation and resource servers
// with @interledger/open-payments, which signs every request (RFC 9421)
// and validates every response against the Open Payments OpenAPI specs.
// Usage: node opclient.js WALLET_ADDRESS_URL PAYER_WALLET_ADDRESS_URL CLIENT_WALLET_ADDRESS_URL KEY_FILE KEY_ID
// The client's key (PEM, Ed25519) is KEY_FILE; its jwks.json is served at
// CLIENT_WALLET_ADDRESS_URL/jwks.json by the test.
// Prints one JSON line with what each call returned, or {error}.
'use strict'
const crypto = require('crypto')
const fs = require('fs')
const { createAuthenticatedClient, createUnauthenticatedClient } = require('@interledger/open-payments')

const [walletUrl, payerUrl, clientUrl, keyFile, keyId] = process.argv.slice(2)

const main = async () => {
  const pub = await createUnauthenticatedClient({ validateResponses: true })
  const wallet = await pub.walletAddress.get({ url: walletUrl })
  const keys = await pub.walletAddress.getKeys({ url: walletUrl })
  const privateKey = crypto.createPrivateKey(fs.readFileSync(keyFile))
  const client = await createAuthenticatedClient({ walletAddressUrl: clientUrl, privateKey, keyId, validateResponses: true })
  const grant = await client.grant.request(
    { url: wallet.authServer },
    {
      access_token: {
        access: [
          { type: 'incoming-payment', actions: ['create', 'read', 'list', 'complete'] },
          { type: 'quote', actions: ['create', 'read'] },
          { type: 'outgoing-payment', actions: ['create', 'read', 'list'], identifier: payerUrl },
        ],
      },
    }
  )
  const accessToken = grant.access_token.value
  const created = await client.incomingPayment.create(
    { url: wallet.resourceServer, accessToken },
    {
      walletAddress: wallet.id,
      incomingAmount: { value: '500', assetCode: wallet.assetCode, assetScale: wallet.assetScale },
      metadata: { description: 'opclient' },
    }
  )
  const got = await client.incomingPayment.get({ url: created.id, accessToken })
  const publicForm = await pub.incomingPayment.get({ url: created.id })
  const list = await client.incomingPayment.list({ url: wallet.resourceServer, walletAddress: wallet.id, accessToken }, { first: 10 })
  const completed = await client.incomingPayment.complete({ url: created.id, accessToken })
  // The paying side: a quote and an outgoing payment from payerUrl's
  // wallet to a second incoming payment.
  const payer = await pub.walletAddress.get({ url: payerUrl })
  const receiver = await client.incomingPayment.create(
    { url: wallet.resourceServer, accessToken },
    { walletAddress: wallet.id, incomingAmount: { value: '300', assetCode: wallet.assetCode, assetScale: wallet.assetScale } }
  )
  const quote = await client.quote.create({ url: payer.resourceServer, accessToken }, { walletAddress: payer.id, receiver: receiver.id, method: 'ilp' })
  const gotQuote = await client.quote.get({ url: quote.id, accessToken })
  const outgoing = await client.outgoingPayment.create(
    { url: payer.resourceServer, accessToken },
    { walletAddress: payer.id, quoteId: quote.id, metadata: { description: 'opclient' } }
  )
  const gotOutgoing = await client.outgoingPayment.get({ url: outgoing.id, accessToken })
  const outgoingList = await client.outgoingPayment.list({ url: payer.resourceServer, walletAddress: payer.id, accessToken }, { first: 10 })
  // The token rotated: the new value works; revoked: it no longer does.
  const rotated = (await client.token.rotate({ url: grant.access_token.manage, accessToken })).access_token
  const afterRotation = await client.incomingPayment.get({ url: created.id, accessToken: rotated.value })
  await client.token.revoke({ url: rotated.manage, accessToken: rotated.value })
  let afterRevocation
  try {
    await client.incomingPayment.get({ url: created.id, accessToken: rotated.value })
    afterRevocation = { status: 200 }
  } catch (e) {
    afterRevocation = { status: e.status, description: e.description }
  }
  process.stdout.write(JSON.stringify({ wallet, keys, grant, created, got, publicForm, list, completed, quote, gotQuote, outgoing, gotOutgoing, outgoingList, rotated, afterRotation, afterRevocation }) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && (e.message || e)), details: e && { description: e.description, status: e.status, validationErrors: e.validationErrors, stack: String(e.stack).split('\n').slice(0, 6) } }) + '\n')
  process.exitCode = 1
})
