// Package chainsim owns the simulated EVM chain of the cryptopay rail's
// development setup and tests: one chain with one ERC-20 token, served as
// an http.Handler speaking exactly the Ethereum JSON-RPC subset package
// chain uses, over HTTP and over WebSocket with eth_subscribe, so that
// "qrswitch serve" demonstrates a checkout with nothing installed.
//
// # JSON-RPC (POST / and WebSocket GET /)
//
// eth_chainId, net_version, eth_blockNumber, eth_getBlockByNumber,
// eth_getBlockByHash, eth_getLogs (blockHash, or fromBlock/toBlock with
// "earliest", "latest", "safe", "finalized" or a number; address; topics),
// eth_call (the token's decimals(), balanceOf(address), totalSupply(),
// symbol(), name()), and on a WebSocket eth_subscribe ("newHeads", "logs"
// with address and topics) and eth_unsubscribe. Batches are answered. As
// in geth: eth_getLogs by the hash of a block it never had fails with
// "unknown block"; one that left the chain in a reorganisation still
// answers with its logs; a reorganisation sends the logs of the removed
// blocks again with "removed": true, then the new blocks' logs and heads;
// a subscriber more than 4096 notifications behind is disconnected.
//
// # Customer controls (plain JSON, not authenticated)
//
//	GET  /sim/v1/chain        {chainId, token, decimals, symbol, customer, head}
//	POST /sim/v1/transfer     {"to":"0x…","amount":"12.5"} (token units) or
//	                          {"to":"0x…","value":"12500000"} (base units),
//	                          optional "from" (default the customer):
//	                          one transfer in a new block; answers the receipt
//	POST /sim/v1/transfers    {"transfers":[{…},{…}]}: all in one new block
//	POST /sim/v1/mine         {"blocks":N}: N empty blocks (default 1)
//	POST /sim/v1/reorg        {"depth":D,"blocks":B,"reinclude":bool}:
//	                          replaces the last D blocks by B new ones
//	                          (default D+1; 0 leaves the chain shorter, as
//	                          ganache's evm_revert does); with reinclude the
//	                          removed transfers are mined again, same
//	                          transaction hashes, in the first new block
//	POST /sim/v1/disconnect   closes every WebSocket connection
//
// Errors are 400 {"error":"…"}. Any address may send; a transfer beyond
// the sender's balance is refused. The customer starts with
// Config.InitialSupply; tokens for anyone else come from the customer.
package chainsim
