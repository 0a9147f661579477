// Package chain owns the cryptopay rail's view of an EVM chain: a
// JSON-RPC client for the calls the rail makes (eth_chainId,
// eth_blockNumber, eth_getBlockByNumber, eth_getLogs, eth_call) over HTTP
// or WebSocket, eth_subscribe subscriptions, ERC-20 Transfer decoding,
// EIP-681 payment URIs and decimal amounts, and the Watcher that turns a
// token's Transfer logs into an exact, restartable stream for the rail.
//
// # What the Watcher promises its Sink
//
// The Watcher follows the chain block by block from a durable Cursor (the
// last block it fully processed, number and hash). For each run of new
// blocks it calls Sink.Blocks with the token's transfers in them, the
// transfers that have just reached the configured number of confirmations,
// and the new tip; only when the Sink returns nil does the cursor move and
// get saved. When blocks it processed leave the chain, it calls Sink.Reorg
// with the last block still on the chain and the transfers it knows it
// delivered from the blocks that left.
//
//   - Delivery is at least once: after a restart, a disconnect or a failed
//     Sink or Cursor call, transfers the Sink already has may come again.
//     Transfer.ID (block hash, transaction hash, log index) is stable, so
//     the Sink keys what it stores by it and ignores an ID it holds.
//   - Nothing is skipped: every block after the cursor is read, by
//     eth_getLogs, before the cursor passes it, whatever the subscription
//     did or missed.
//   - Calls are synchronous, from one goroutine, in chain order; the
//     Sink's error stops the watcher from moving on (it retries later).
//   - Reorg.Ancestor is authoritative: every transfer the Sink holds from a
//     block numbered above Ancestor.Number is no longer on the chain,
//     whether or not it is in Reorg.Removed (after a restart the Watcher
//     cannot list what an earlier run delivered). Transfers still on the
//     new chain are delivered again, with their new block's hash and
//     therefore a new ID. A transfer's confirmation is reported again when
//     it recurs; transfers at or below Ancestor keep theirs.
//   - A transfer is confirmed when the tip is at least Confirmations-1
//     blocks past its block (Confirmations 1: confirmed when mined).
//
// Blocks deeper than the reorg window (Config.ReorgWindow, at least the
// confirmations) below the node's head are treated as final: they are read
// by block range, without checking each block's parent. Blocks within the
// window are read one at a time, each checked against its parent's hash,
// their logs fetched by block hash (EIP-234) so a reorganisation between
// two calls cannot mix two chains.
package chain
