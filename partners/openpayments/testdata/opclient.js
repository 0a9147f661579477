// Drives the resource server with @interledger/open-payments, which
// validates every response against the Open Payments OpenAPI specs.
// Usage: node opclient.js WALLET_ADDRESS_URL ACCESS_TOKEN PAYER_WALLET_ADDRESS_URL
// Prints one JSON line with what each call returned, or {error}.
'use strict'
const crypto = require('crypto')
const { createAuthenticatedClient, createUnauthenticatedClient } = require('@interledger/open-payments')

const [walletUrl, accessToken, payerUrl] = process.argv.slice(2)

const main = async () => {
  const pub = await createUnauthenticatedClient({ validateResponses: true })
  const wallet = await pub.walletAddress.get({ url: walletUrl })
  const keys = await pub.walletAddress.getKeys({ url: walletUrl })
  const { privateKey } = crypto.generateKeyPairSync('ed25519')
  const client = await createAuthenticatedClient({
    walletAddressUrl: 'https://client.example/wallet',
    privateKey,
    keyId: 'test-key',
    validateResponses: true,
  })
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
  process.stdout.write(JSON.stringify({ wallet, keys, created, got, publicForm, list, completed, quote, gotQuote, outgoing, gotOutgoing, outgoingList }) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && (e.message || e)), details: e && { description: e.description, status: e.status, validationErrors: e.validationErrors, stack: String(e.stack).split('\n').slice(0, 6) } }) + '\n')
  process.exitCode = 1
})
