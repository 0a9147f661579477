package chainsim

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeNoMethod       = -32601
	codeInvalidParams  = -32602
	codeServer         = -32000
	codeLimit          = -32005
)

type rpcRequest struct {
	JSONRPC string            `json:"jsonrpc"`
	ID      json.RawMessage   `json:"id"`
	Method  string            `json:"method"`
	Params  []json.RawMessage `json:"params"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

// MarshalJSON writes "result": null for a nil result of a successful call.
func (r rpcResponse) MarshalJSON() ([]byte, error) {
	if r.Error != nil {
		return json.Marshal(struct {
			JSONRPC string          `json:"jsonrpc"`
			ID      json.RawMessage `json:"id"`
			Error   *rpcError       `json:"error"`
		}{r.JSONRPC, r.ID, r.Error})
	}
	return json.Marshal(struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result"`
	}{r.JSONRPC, r.ID, r.Result})
}

func errorf(code int, format string, args ...any) *rpcError {
	return &rpcError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// handlePayload answers a request or a batch; sess is nil over HTTP. It
// returns nil when nothing is to be answered (only notifications).
func (s *Sim) handlePayload(body []byte, sess *session) []byte {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var batch []json.RawMessage
		if err := json.Unmarshal(body, &batch); err != nil {
			return mustJSON(rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: errorf(codeParse, "parse error: %v", err)})
		}
		if len(batch) == 0 {
			return mustJSON(rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: errorf(codeInvalidRequest, "empty batch")})
		}
		var out []rpcResponse
		for _, raw := range batch {
			if r, ok := s.handleOne(raw, sess); ok {
				out = append(out, r)
			}
		}
		if len(out) == 0 {
			return nil
		}
		return mustJSON(out)
	}
	r, ok := s.handleOne(body, sess)
	if !ok {
		return nil
	}
	return mustJSON(r)
}

func (s *Sim) handleOne(raw json.RawMessage, sess *session) (rpcResponse, bool) {
	var req rpcRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		var probe any
		if json.Unmarshal(raw, &probe) != nil {
			return rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: errorf(codeParse, "parse error: %v", err)}, true
		}
		return rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"), Error: errorf(codeInvalidRequest, "invalid request: %v", err)}, true
	}
	if req.ID == nil {
		return rpcResponse{}, false // a notification: no answer
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		return rpcResponse{JSONRPC: "2.0", ID: req.ID, Error: errorf(codeInvalidRequest, "invalid request: want jsonrpc 2.0 and a method")}, true
	}
	result, rerr := s.call(req.Method, req.Params, sess)
	return rpcResponse{JSONRPC: "2.0", ID: req.ID, Result: result, Error: rerr}, true
}

// call runs one method.
func (s *Sim) call(method string, params []json.RawMessage, sess *session) (any, *rpcError) {
	switch method {
	case "eth_chainId":
		return quantity(s.cfg.ChainID), nil
	case "net_version":
		return strconv.FormatUint(s.cfg.ChainID, 10), nil
	case "eth_blockNumber":
		return quantity(s.Head().Number), nil
	case "eth_getBlockByNumber":
		var tag string
		if err := param(params, 0, &tag); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		n, err := s.blockNumber(tag)
		if err != nil {
			return nil, err
		}
		if n >= uint64(len(s.blocks)) {
			return nil, nil
		}
		return s.blocks[n].json(), nil
	case "eth_getBlockByHash":
		var h chain.Hash
		if err := param(params, 0, &h); err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if b, ok := s.byHash[h]; ok {
			return b.json(), nil
		}
		return nil, nil
	case "eth_getLogs":
		var f filter
		if err := param(params, 0, &f); err != nil {
			return nil, err
		}
		return s.logs(f)
	case "eth_call":
		var c struct {
			To   *chain.Address `json:"to"`
			Data string         `json:"data"`
			In   string         `json:"input"`
		}
		if err := param(params, 0, &c); err != nil {
			return nil, err
		}
		if c.Data == "" {
			c.Data = c.In
		}
		return s.ethCall(c.To, c.Data)
	case "eth_subscribe":
		if sess == nil {
			return nil, errorf(codeNoMethod, "notifications not supported over HTTP")
		}
		return sess.subscribe(params)
	case "eth_unsubscribe":
		if sess == nil {
			return nil, errorf(codeNoMethod, "notifications not supported over HTTP")
		}
		var id string
		if err := param(params, 0, &id); err != nil {
			return nil, err
		}
		return sess.unsubscribe(id), nil
	}
	return nil, errorf(codeNoMethod, "the method %s does not exist/is not available", method)
}

// param decodes params[i] into v.
func param(params []json.RawMessage, i int, v any) *rpcError {
	if i >= len(params) {
		return errorf(codeInvalidParams, "missing value for required argument %d", i)
	}
	if err := json.Unmarshal(params[i], v); err != nil {
		return errorf(codeInvalidParams, "invalid argument %d: %v", i, err)
	}
	return nil
}

// blockNumber resolves a block tag. Callers hold mu.
func (s *Sim) blockNumber(tag string) (uint64, *rpcError) {
	switch tag {
	case "latest", "pending", "safe", "finalized":
		return s.head().header.Number, nil
	case "earliest":
		return 0, nil
	}
	n, err := parseQuantity(tag)
	if err != nil {
		return 0, errorf(codeInvalidParams, "invalid block number %q", tag)
	}
	return n, nil
}

func (b *block) json() map[string]any {
	txs := make([]string, len(b.txs))
	for i, t := range b.txs {
		txs[i] = t.String()
	}
	return map[string]any{
		"number":       quantity(b.header.Number),
		"hash":         b.header.Hash.String(),
		"parentHash":   b.header.ParentHash.String(),
		"timestamp":    quantity(b.header.Time),
		"transactions": txs,
	}
}

// filter is an eth_getLogs or logs subscription filter.
type filter struct {
	BlockHash *chain.Hash       `json:"blockHash"`
	FromBlock *string           `json:"fromBlock"`
	ToBlock   *string           `json:"toBlock"`
	Address   json.RawMessage   `json:"address"`
	Topics    []json.RawMessage `json:"topics"`

	addresses []chain.Address
	topics    [][]chain.Hash
}

// compile reads the address and topic alternatives.
func (f *filter) compile() *rpcError {
	if len(f.Address) > 0 && string(f.Address) != "null" {
		var one string
		if json.Unmarshal(f.Address, &one) == nil {
			a, err := hdkey.ParseAddress(one)
			if err != nil {
				return errorf(codeInvalidParams, "invalid address: %v", err)
			}
			f.addresses = []chain.Address{a}
		} else {
			var many []chain.Address
			if err := json.Unmarshal(f.Address, &many); err != nil {
				return errorf(codeInvalidParams, "invalid address: %v", err)
			}
			f.addresses = many
		}
	}
	if len(f.Topics) > 4 {
		return errorf(codeInvalidParams, "too many topics: %d", len(f.Topics))
	}
	for i, raw := range f.Topics {
		var alts []chain.Hash
		switch {
		case len(raw) == 0 || string(raw) == "null":
		case raw[0] == '[':
			if err := json.Unmarshal(raw, &alts); err != nil {
				return errorf(codeInvalidParams, "invalid topic %d: %v", i, err)
			}
		default:
			var one chain.Hash
			if err := json.Unmarshal(raw, &one); err != nil {
				return errorf(codeInvalidParams, "invalid topic %d: %v", i, err)
			}
			alts = []chain.Hash{one}
		}
		f.topics = append(f.topics, alts)
	}
	return nil
}

// matches reports whether l passes the filter's address and topics.
func (f *filter) matches(l chain.Log) bool {
	if len(f.addresses) > 0 {
		ok := false
		for _, a := range f.addresses {
			ok = ok || a == l.Address
		}
		if !ok {
			return false
		}
	}
	for i, alts := range f.topics {
		if len(alts) == 0 {
			continue
		}
		if i >= len(l.Topics) {
			return false
		}
		ok := false
		for _, t := range alts {
			ok = ok || t == l.Topics[i]
		}
		if !ok {
			return false
		}
	}
	return true
}

func (s *Sim) logs(f filter) (any, *rpcError) {
	if err := f.compile(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []chain.Log{}
	if f.BlockHash != nil {
		if f.FromBlock != nil || f.ToBlock != nil {
			return nil, errorf(codeInvalidParams, "cannot specify both blockHash and fromBlock/toBlock")
		}
		b, ok := s.byHash[*f.BlockHash]
		if !ok {
			return nil, errorf(codeServer, "unknown block")
		}
		for _, l := range b.logs {
			if f.matches(l) {
				out = append(out, l)
			}
		}
		return out, nil
	}
	from, to := s.head().header.Number, s.head().header.Number
	var err *rpcError
	if f.FromBlock != nil {
		if from, err = s.blockNumber(*f.FromBlock); err != nil {
			return nil, err
		}
	}
	if f.ToBlock != nil {
		if to, err = s.blockNumber(*f.ToBlock); err != nil {
			return nil, err
		}
	}
	if from > to {
		return out, nil
	}
	if to-from >= s.cfg.MaxLogRange {
		return nil, errorf(codeLimit, "query exceeds max block range %d", s.cfg.MaxLogRange)
	}
	for n := from; n <= to && n < uint64(len(s.blocks)); n++ {
		for _, l := range s.blocks[n].logs {
			if f.matches(l) {
				out = append(out, l)
			}
		}
	}
	return out, nil
}

// ethCall answers the token's read-only functions.
func (s *Sim) ethCall(to *chain.Address, data string) (any, *rpcError) {
	if to == nil {
		return nil, errorf(codeInvalidParams, "eth_call without to")
	}
	input, err := hex.DecodeString(strings.TrimPrefix(data, "0x"))
	if err != nil {
		return nil, errorf(codeInvalidParams, "invalid data: %v", err)
	}
	if *to != s.cfg.Token {
		return "0x", nil // an account without code returns nothing
	}
	if len(input) < 4 {
		return nil, errorf(codeServer, "execution reverted")
	}
	var ret []byte
	switch sel := hex.EncodeToString(input[:4]); sel {
	case "313ce567": // decimals()
		ret = word(big.NewInt(int64(s.cfg.Decimals)))
	case "18160ddd": // totalSupply()
		s.mu.Lock()
		ret = word(s.supply)
		s.mu.Unlock()
	case "70a08231": // balanceOf(address)
		if len(input) != 4+32 {
			return nil, errorf(codeServer, "execution reverted")
		}
		ret = word(s.BalanceOf(chain.Address(input[4+12:])))
	case "95d89b41": // symbol()
		ret = abiString(s.cfg.Symbol)
	case "06fdde03": // name()
		ret = abiString(s.cfg.Name)
	default:
		return nil, errorf(codeServer, "execution reverted")
	}
	return "0x" + hex.EncodeToString(ret), nil
}

func word(v *big.Int) []byte { return v.FillBytes(make([]byte, 32)) }

// abiString encodes a string return value: offset, length, padded bytes.
func abiString(s string) []byte {
	out := word(big.NewInt(32))
	out = append(out, word(big.NewInt(int64(len(s))))...)
	padded := make([]byte, (len(s)+31)/32*32)
	copy(padded, s)
	return append(out, padded...)
}

func quantity(v uint64) string { return "0x" + strconv.FormatUint(v, 16) }

func parseQuantity(s string) (uint64, error) {
	if !strings.HasPrefix(s, "0x") || len(s) < 3 || len(s) > 18 {
		return 0, fmt.Errorf("not a quantity: %q", s)
	}
	return strconv.ParseUint(s[2:], 16, 64)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"jsonrpc":"2.0","id":null,"error":{"code":-32603,"message":"internal error"}}`)
	}
	return b
}
