package chain

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
)

// Client makes the typed Ethereum JSON-RPC calls the cryptopay rail needs,
// over any Caller (HTTP or WebSocket).
type Client struct {
	c Caller
}

// NewClient returns a Client calling through c.
func NewClient(c Caller) *Client {
	return &Client{c: c}
}

// Caller returns the Caller the client calls through.
func (c *Client) Caller() Caller { return c.c }

// ChainID returns the chain id (eth_chainId, EIP-695).
func (c *Client) ChainID(ctx context.Context) (uint64, error) {
	return c.quantity(ctx, "eth_chainId")
}

// BlockNumber returns the number of the node's latest block.
func (c *Client) BlockNumber(ctx context.Context) (uint64, error) {
	return c.quantity(ctx, "eth_blockNumber")
}

func (c *Client) quantity(ctx context.Context, method string) (uint64, error) {
	var s string
	if err := c.c.Call(ctx, &s, method); err != nil {
		return 0, err
	}
	v, err := parseQuantity(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", method, err)
	}
	return v, nil
}

// HeaderByNumber returns the header of the canonical block n, or
// ErrNotFound when the chain is shorter.
func (c *Client) HeaderByNumber(ctx context.Context, n uint64) (Header, error) {
	return c.header(ctx, formatQuantity(n))
}

// LatestHeader returns the header of the node's latest block.
func (c *Client) LatestHeader(ctx context.Context) (Header, error) {
	return c.header(ctx, "latest")
}

func (c *Client) header(ctx context.Context, block string) (Header, error) {
	var raw json.RawMessage
	if err := c.c.Call(ctx, &raw, "eth_getBlockByNumber", block, false); err != nil {
		return Header{}, err
	}
	if isNull(raw) {
		return Header{}, fmt.Errorf("block %s: %w", block, ErrNotFound)
	}
	var h Header
	if err := json.Unmarshal(raw, &h); err != nil {
		return Header{}, fmt.Errorf("eth_getBlockByNumber %s: %w", block, err)
	}
	return h, nil
}

// FilterQuery selects logs for eth_getLogs: either one block by hash
// (BlockHash, EIP-234) or the range FromBlock..ToBlock (inclusive).
type FilterQuery struct {
	BlockHash *Hash
	FromBlock uint64
	ToBlock   uint64
	// Addresses are the emitting contracts (any of them).
	Addresses []Address
	// Topics[i] lists the values topic i may take (any of them); an empty
	// list matches anything.
	Topics [][]Hash
}

// MarshalJSON encodes q as the eth_getLogs filter object.
func (q FilterQuery) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if q.BlockHash != nil {
		m["blockHash"] = q.BlockHash.String()
	} else {
		m["fromBlock"] = formatQuantity(q.FromBlock)
		m["toBlock"] = formatQuantity(q.ToBlock)
	}
	switch len(q.Addresses) {
	case 0:
	case 1:
		m["address"] = q.Addresses[0]
	default:
		m["address"] = q.Addresses
	}
	if len(q.Topics) > 0 {
		topics := make([]any, len(q.Topics))
		for i, alts := range q.Topics {
			switch len(alts) {
			case 0:
				topics[i] = nil
			case 1:
				topics[i] = alts[0]
			default:
				topics[i] = alts
			}
		}
		m["topics"] = topics
	}
	return json.Marshal(m)
}

// subscription returns the filter object of a logs subscription, which
// has no block range.
func (q FilterQuery) subscription() map[string]any {
	m := map[string]any{}
	if len(q.Addresses) == 1 {
		m["address"] = q.Addresses[0]
	} else if len(q.Addresses) > 1 {
		m["address"] = q.Addresses
	}
	if len(q.Topics) > 0 {
		topics := make([]any, len(q.Topics))
		for i, alts := range q.Topics {
			switch len(alts) {
			case 0:
			case 1:
				topics[i] = alts[0]
			default:
				topics[i] = alts
			}
		}
		m["topics"] = topics
	}
	return m
}

// Logs returns the logs matching q in one eth_getLogs call.
func (c *Client) Logs(ctx context.Context, q FilterQuery) ([]Log, error) {
	var logs []Log
	if err := c.c.Call(ctx, &logs, "eth_getLogs", q); err != nil {
		return nil, err
	}
	return logs, nil
}

// TransferQuery selects the ERC-20 Transfer logs of one token.
type TransferQuery struct {
	Token Address
	// BlockHash selects one block; otherwise FromBlock..ToBlock (inclusive).
	BlockHash *Hash
	FromBlock uint64
	ToBlock   uint64
	// To, when not empty, keeps only the transfers to these addresses (a
	// topic filter at the node); empty: every transfer of the token.
	To []Address
	// MaxRange is the most blocks one eth_getLogs call covers. Default
	// DefaultMaxRange.
	MaxRange uint64
	// MaxRecipients is the most addresses one call's To filter lists.
	// Default DefaultMaxRecipients.
	MaxRecipients int
}

// Defaults of TransferQuery.
const (
	DefaultMaxRange      = 2000
	DefaultMaxRecipients = 500
)

// Transfers returns the token's Transfer logs selected by q, decoded, in
// chain order (block, then log index). The range is split into calls of
// at most q.MaxRange blocks and q.MaxRecipients recipients; a call the
// node refuses with a JSON-RPC error (providers cap results per call) is
// split in halves until it is one block. A log that is not an ERC-20
// Transfer (another event under the same topic) is skipped.
func (c *Client) Transfers(ctx context.Context, q TransferQuery) ([]Transfer, error) {
	if q.MaxRange == 0 {
		q.MaxRange = DefaultMaxRange
	}
	if q.MaxRecipients <= 0 {
		q.MaxRecipients = DefaultMaxRecipients
	}
	var recipients [][]Hash
	for i := 0; i < len(q.To); i += q.MaxRecipients {
		end := min(i+q.MaxRecipients, len(q.To))
		topics := make([]Hash, 0, end-i)
		for _, a := range q.To[i:end] {
			topics = append(topics, AddressTopic(a))
		}
		recipients = append(recipients, topics)
	}
	if recipients == nil {
		recipients = [][]Hash{nil}
	}
	var out []Transfer
	for _, to := range recipients {
		base := FilterQuery{
			BlockHash: q.BlockHash,
			Addresses: []Address{q.Token},
			Topics:    [][]Hash{{TransferTopic}, nil, to},
		}
		if q.BlockHash != nil {
			logs, err := c.Logs(ctx, base)
			if err != nil {
				return nil, err
			}
			out = appendTransfers(out, logs, q.Token)
			continue
		}
		for from := q.FromBlock; from <= q.ToBlock; {
			end := q.ToBlock
			if end-from >= q.MaxRange {
				end = from + q.MaxRange - 1
			}
			var err error
			if out, err = c.rangeTransfers(ctx, base, from, end, q.Token, out); err != nil {
				return nil, err
			}
			if end == q.ToBlock {
				break
			}
			from = end + 1
		}
	}
	if len(recipients) > 1 {
		sortTransfers(out)
	}
	return out, nil
}

// rangeTransfers fetches from..to, halving the range when the node
// refuses it.
func (c *Client) rangeTransfers(ctx context.Context, q FilterQuery, from, to uint64, token Address, out []Transfer) ([]Transfer, error) {
	q.FromBlock, q.ToBlock = from, to
	logs, err := c.Logs(ctx, q)
	var rpcErr *RPCError
	if err != nil && errors.As(err, &rpcErr) && to > from {
		mid := from + (to-from)/2
		if out, err = c.rangeTransfers(ctx, q, from, mid, token, out); err != nil {
			return nil, err
		}
		return c.rangeTransfers(ctx, q, mid+1, to, token, out)
	}
	if err != nil {
		return nil, fmt.Errorf("getting transfers of blocks %d-%d: %w", from, to, err)
	}
	return appendTransfers(out, logs, token), nil
}

func appendTransfers(out []Transfer, logs []Log, token Address) []Transfer {
	for _, l := range logs {
		if l.Address != token {
			continue // a node that ignored the address filter
		}
		t, err := DecodeTransfer(l)
		if err != nil {
			continue
		}
		out = append(out, t)
	}
	return out
}

// CallContract runs a read-only call of contract to with input data at
// the latest block (eth_call) and returns what it returned.
func (c *Client) CallContract(ctx context.Context, to Address, data []byte) ([]byte, error) {
	var s string
	call := map[string]string{"to": to.String(), "data": "0x" + hex.EncodeToString(data)}
	if err := c.c.Call(ctx, &s, "eth_call", call, "latest"); err != nil {
		return nil, err
	}
	return parseData(s)
}

// Decimals returns an ERC-20 token's decimals(): how many of the value's
// digits are the fraction (6 for USDC and USDT, 18 for most others).
func (c *Client) Decimals(ctx context.Context, token Address) (uint8, error) {
	ret, err := c.CallContract(ctx, token, selectorDecimals)
	if err != nil {
		return 0, fmt.Errorf("calling decimals() of %s: %w", token, err)
	}
	v, err := decodeUint(ret, 8)
	if err != nil {
		return 0, fmt.Errorf("decimals() of %s: %w", token, err)
	}
	return uint8(v.Uint64()), nil
}

// BalanceOf returns an ERC-20 token's balanceOf(owner) in base units.
func (c *Client) BalanceOf(ctx context.Context, token, owner Address) (*big.Int, error) {
	input := append(bytes.Clone(selectorBalanceOf), make([]byte, 12)...)
	input = append(input, owner[:]...)
	ret, err := c.CallContract(ctx, token, input)
	if err != nil {
		return nil, fmt.Errorf("calling balanceOf(%s) of %s: %w", owner, token, err)
	}
	v, err := decodeUint(ret, 256)
	if err != nil {
		return nil, fmt.Errorf("balanceOf(%s) of %s: %w", owner, token, err)
	}
	return v, nil
}

func isNull(raw json.RawMessage) bool {
	return len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}
