// Pays an Open Payments incoming payment's ILP method with
// @interledger/pay over ILP over HTTP.
// Usage: node pay.js URL TOKEN ILP_ADDRESS SHARED_SECRET_BASE64URL AMOUNT ASSET_CODE ASSET_SCALE
// Prints one JSON line with the result.
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
  const destination = await setupPayment({ plugin, destinationAddress, sharedSecret: Buffer.from(secret, 'base64url') })
  const quote = await startQuote({ plugin, destination, amountToDeliver: BigInt(amount), sourceAsset: { code, scale: +scale } })
  const result = await pay({ plugin, destination, quote })
  process.stdout.write(JSON.stringify({
    amountSent: result.amountSent.toString(),
    amountDelivered: result.amountDelivered.toString(),
    error: result.error || null,
  }) + '\n')
}

main().catch((e) => {
  process.stdout.write(JSON.stringify({ error: String(e && (e.message || e)) }) + '\n')
  process.exitCode = 1
})
