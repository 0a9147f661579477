package chain

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strconv"

	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// ErrMalformed is wrapped by every error about bytes a node sent that do
// not have the shape the Ethereum JSON-RPC specification gives them.
var ErrMalformed = errors.New("chain: malformed JSON-RPC value")

// Address is an Ethereum address (see package hdkey).
type Address = hdkey.Address

// Hash is a 32-byte Keccak-256 hash: a block, transaction or topic.
type Hash [32]byte

// String returns h as "0x" and 64 lower-case hex digits.
func (h Hash) String() string {
	return "0x" + hex.EncodeToString(h[:])
}

// MarshalText encodes h as String does.
func (h Hash) MarshalText() ([]byte, error) {
	return []byte(h.String()), nil
}

// UnmarshalText parses "0x" and 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	v, err := parseHash(string(b))
	if err != nil {
		return err
	}
	*h = v
	return nil
}

// IsZero reports whether h is all zeros (no hash).
func (h Hash) IsZero() bool {
	return h == Hash{}
}

// ParseHash parses "0x" and 64 hex digits.
func ParseHash(s string) (Hash, error) {
	return parseHash(s)
}

// BlockRef names one block: its number and hash.
type BlockRef struct {
	Number uint64 `json:"number"`
	Hash   Hash   `json:"hash"`
}

// String returns "#number (hash)".
func (r BlockRef) String() string {
	return fmt.Sprintf("#%d (%s)", r.Number, r.Hash)
}

// Header is the part of a block header the watcher needs.
type Header struct {
	Number     uint64
	Hash       Hash
	ParentHash Hash
	// Time is the block's timestamp in seconds since the Unix epoch.
	Time uint64
}

// Ref returns the header's number and hash.
func (h Header) Ref() BlockRef {
	return BlockRef{Number: h.Number, Hash: h.Hash}
}

// headerJSON is a header as eth_getBlockByNumber and newHeads send it; the
// other fields a node sends are ignored.
type headerJSON struct {
	Number     *string `json:"number"`
	Hash       *string `json:"hash"`
	ParentHash *string `json:"parentHash"`
	Timestamp  *string `json:"timestamp"`
}

// UnmarshalJSON decodes a block or header object. Number, hash, parentHash
// and timestamp are required: a pending block (null number or hash) is
// refused.
func (h *Header) UnmarshalJSON(b []byte) error {
	var j headerJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: header: %w", ErrMalformed, err)
	}
	if j.Number == nil || j.Hash == nil || j.ParentHash == nil || j.Timestamp == nil {
		return fmt.Errorf("%w: header without number, hash, parentHash or timestamp", ErrMalformed)
	}
	var v Header
	var err error
	if v.Number, err = parseQuantity(*j.Number); err != nil {
		return fmt.Errorf("header number: %w", err)
	}
	if v.Hash, err = parseHash(*j.Hash); err != nil {
		return fmt.Errorf("header hash: %w", err)
	}
	if v.ParentHash, err = parseHash(*j.ParentHash); err != nil {
		return fmt.Errorf("header parentHash: %w", err)
	}
	if v.Time, err = parseQuantity(*j.Timestamp); err != nil {
		return fmt.Errorf("header timestamp: %w", err)
	}
	*h = v
	return nil
}

// MarshalJSON encodes h with the JSON-RPC field names and encodings.
func (h Header) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]string{
		"number":     formatQuantity(h.Number),
		"hash":       h.Hash.String(),
		"parentHash": h.ParentHash.String(),
		"timestamp":  formatQuantity(h.Time),
	})
}

// Log is an event log of a mined transaction, as eth_getLogs and the logs
// subscription send it.
type Log struct {
	Address     Address
	Topics      []Hash
	Data        []byte
	BlockNumber uint64
	BlockHash   Hash
	TxHash      Hash
	TxIndex     uint64
	Index       uint64 // position of the log in its block
	// Removed is set by a logs subscription for a log whose block left the
	// chain in a reorganisation.
	Removed bool
}

// maxTopics is the most topics an EVM log can carry (LOG4).
const maxTopics = 4

type logJSON struct {
	Address          *string  `json:"address"`
	Topics           []string `json:"topics"`
	Data             *string  `json:"data"`
	BlockNumber      *string  `json:"blockNumber"`
	BlockHash        *string  `json:"blockHash"`
	TransactionHash  *string  `json:"transactionHash"`
	TransactionIndex *string  `json:"transactionIndex"`
	LogIndex         *string  `json:"logIndex"`
	Removed          bool     `json:"removed"`
}

// UnmarshalJSON decodes a log object. A pending log (null block hash,
// number, transaction hash or index) is refused: the watcher only reads
// mined logs.
func (l *Log) UnmarshalJSON(b []byte) error {
	var j logJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("%w: log: %w", ErrMalformed, err)
	}
	if j.Address == nil || j.Data == nil || j.BlockNumber == nil || j.BlockHash == nil ||
		j.TransactionHash == nil || j.TransactionIndex == nil || j.LogIndex == nil {
		return fmt.Errorf("%w: log without address, data, block, transaction or index (pending?)", ErrMalformed)
	}
	if len(j.Topics) > maxTopics {
		return fmt.Errorf("%w: log with %d topics, at most %d", ErrMalformed, len(j.Topics), maxTopics)
	}
	var v Log
	var err error
	if v.Address, err = hdkey.ParseAddress(*j.Address); err != nil {
		return fmt.Errorf("%w: log address: %w", ErrMalformed, err)
	}
	v.Topics = make([]Hash, len(j.Topics))
	for i, t := range j.Topics {
		if v.Topics[i], err = parseHash(t); err != nil {
			return fmt.Errorf("log topic %d: %w", i, err)
		}
	}
	if v.Data, err = parseData(*j.Data); err != nil {
		return fmt.Errorf("log data: %w", err)
	}
	if v.BlockNumber, err = parseQuantity(*j.BlockNumber); err != nil {
		return fmt.Errorf("log blockNumber: %w", err)
	}
	if v.BlockHash, err = parseHash(*j.BlockHash); err != nil {
		return fmt.Errorf("log blockHash: %w", err)
	}
	if v.TxHash, err = parseHash(*j.TransactionHash); err != nil {
		return fmt.Errorf("log transactionHash: %w", err)
	}
	if v.TxIndex, err = parseQuantity(*j.TransactionIndex); err != nil {
		return fmt.Errorf("log transactionIndex: %w", err)
	}
	if v.Index, err = parseQuantity(*j.LogIndex); err != nil {
		return fmt.Errorf("log logIndex: %w", err)
	}
	v.Removed = j.Removed
	*l = v
	return nil
}

// MarshalJSON encodes l with the JSON-RPC field names and encodings.
func (l Log) MarshalJSON() ([]byte, error) {
	topics := make([]string, len(l.Topics))
	for i, t := range l.Topics {
		topics[i] = t.String()
	}
	return json.Marshal(struct {
		Address          string   `json:"address"`
		Topics           []string `json:"topics"`
		Data             string   `json:"data"`
		BlockNumber      string   `json:"blockNumber"`
		BlockHash        string   `json:"blockHash"`
		TransactionHash  string   `json:"transactionHash"`
		TransactionIndex string   `json:"transactionIndex"`
		LogIndex         string   `json:"logIndex"`
		Removed          bool     `json:"removed"`
	}{
		// Nodes send addresses in lower case; so does this encoding.
		Address:          "0x" + hex.EncodeToString(l.Address[:]),
		Topics:           topics,
		Data:             "0x" + hex.EncodeToString(l.Data),
		BlockNumber:      formatQuantity(l.BlockNumber),
		BlockHash:        l.BlockHash.String(),
		TransactionHash:  l.TxHash.String(),
		TransactionIndex: formatQuantity(l.TxIndex),
		LogIndex:         formatQuantity(l.Index),
		Removed:          l.Removed,
	})
}

// parseQuantity parses a JSON-RPC quantity: "0x" and 1 to 16 hex digits.
// Leading zeros, which the specification forbids, are tolerated: refusing
// them would only make a node's harmless quirk an outage.
func parseQuantity(s string) (uint64, error) {
	if len(s) < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0, fmt.Errorf("%w: quantity %q is not 0x and hex digits", ErrMalformed, truncate(s))
	}
	digits := s[2:]
	for len(digits) > 1 && digits[0] == '0' {
		digits = digits[1:]
	}
	if len(digits) > 16 {
		return 0, fmt.Errorf("%w: quantity %q exceeds 64 bits", ErrMalformed, truncate(s))
	}
	v, err := strconv.ParseUint(digits, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: quantity %q: not hex", ErrMalformed, truncate(s))
	}
	return v, nil
}

// parseBigQuantity parses a quantity of any size.
func parseBigQuantity(s string) (*big.Int, error) {
	if len(s) < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || len(s) > 2+64 {
		return nil, fmt.Errorf("%w: quantity %q is not 0x and 1 to 64 hex digits", ErrMalformed, truncate(s))
	}
	v, ok := new(big.Int).SetString(s[2:], 16)
	if !ok {
		return nil, fmt.Errorf("%w: quantity %q: not hex", ErrMalformed, truncate(s))
	}
	return v, nil
}

// formatQuantity encodes v as a JSON-RPC quantity, without leading zeros.
func formatQuantity(v uint64) string {
	return "0x" + strconv.FormatUint(v, 16)
}

// parseData parses JSON-RPC unformatted data: "0x" and an even number of
// hex digits.
func parseData(s string) ([]byte, error) {
	if len(s) < 2 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return nil, fmt.Errorf("%w: data %q does not start with 0x", ErrMalformed, truncate(s))
	}
	b, err := hex.DecodeString(s[2:])
	if err != nil {
		return nil, fmt.Errorf("%w: data %q: %v", ErrMalformed, truncate(s), err)
	}
	return b, nil
}

func parseHash(s string) (Hash, error) {
	var h Hash
	if len(s) != 66 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return h, fmt.Errorf("%w: hash %q is not 0x and 64 hex digits", ErrMalformed, truncate(s))
	}
	if _, err := hex.Decode(h[:], []byte(s[2:])); err != nil {
		return Hash{}, fmt.Errorf("%w: hash %q: %v", ErrMalformed, truncate(s), err)
	}
	return h, nil
}

// truncate keeps error messages short when handed a long string.
func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
