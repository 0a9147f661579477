// Pays a STREAM receiver with @interledger/pay over ILP over HTTP.
// Usage: node pay.js URL TOKEN DESTINATION SECRET_BASE64 AMOUNT ASSET_CODE ASSET_SCALE
// The plugin is the minimal object pay needs: sendData POSTs the OER
// Prepare and returns the OER reply. Prints one JSON line with the result.
'use strict'
const { setupPayment, startQuote, pay } = require('@interledger/pay')

const [url, token, destinationAddress, secret, amount, code, scale] = process.argv.slice(2)

const plugin = {
  async sendData(data) {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/octet-stream', Accept: 'application/octet-stream', Authorization: 'Bearer ' + token },
      body: data,
      signal: AbortSignal.timeout(30000),
    })
    if (res.status !== 200) throw new Error('HTTP ' + res.status + ': ' + (await res.text()))
    return Buffer.from(await res.arrayBuffer())
  },
}

const main = async () => {
  const destination = await setupPayment({ plugin, destinationAddress, sharedSecret: Buffer.from(secret, 'base64') })
  const quote = await startQuote({
    plugin,
    destination,
    amountToDeliver: BigInt(amount),
    sourceAsset: { code, scale: +scale },
  })
  const result = await pay({ plugin, destination, quote })
  process.stdout.write(
    JSON.stringify({
      destinationAsset: destination.destinationAsset,
      maxSourceAmount: quote.maxSourceAmount.toString(),
      amountSent: result.amountSent.toString(),
      amountDelivered: result.amountDelivered.toString(),
      error: result.error || null,
    }) + '\n'
  )
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && (e.message || e)) }) + '\n')
  process.exitCode = 1
})
