package chain

import (
	"cmp"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
)

// TransferTopic is topic 0 of an ERC-20 Transfer event: the Keccak-256
// hash of "Transfer(address,address,uint256)".
var TransferTopic = Hash{
	0xdd, 0xf2, 0x52, 0xad, 0x1b, 0xe2, 0xc8, 0x9b, 0x69, 0xc2, 0xb0, 0x68, 0xfc, 0x37, 0x8d, 0xaa,
	0x95, 0x2b, 0xa7, 0xf1, 0x63, 0xc4, 0xa1, 0x16, 0x28, 0xf5, 0x5a, 0x4d, 0xf5, 0x23, 0xb3, 0xef,
}

// Function selectors (first four bytes of the Keccak-256 of the signature).
var (
	selectorDecimals  = []byte{0x31, 0x3c, 0xe5, 0x67} // decimals()
	selectorBalanceOf = []byte{0x70, 0xa0, 0x82, 0x31} // balanceOf(address)
)

// ErrNotTransfer is returned by DecodeTransfer for a log that is not an
// ERC-20 Transfer: another event, or an ERC-721 Transfer (whose token id
// is a fourth topic).
var ErrNotTransfer = errors.New("chain: not an ERC-20 Transfer log")

// Transfer is one ERC-20 Transfer event: Value base units of Token moved
// from From to To, by transaction TxHash, as log Index of block Block.
type Transfer struct {
	Token Address
	From  Address
	To    Address
	// Value is in the token's base units (see Decimals); never a float.
	Value       *big.Int
	BlockNumber uint64
	BlockHash   Hash
	TxHash      Hash
	Index       uint64 // log index in the block
}

// ID returns the transfer's stable identity: its block hash, transaction
// hash and log index. The same log delivered twice has the same ID; the
// same transaction mined again in another block (after a reorganisation)
// is a different log with a different ID.
func (t Transfer) ID() string {
	return t.BlockHash.String() + ":" + t.TxHash.String() + ":" + strconv.FormatUint(t.Index, 10)
}

// Block returns the number and hash of the transfer's block.
func (t Transfer) Block() BlockRef {
	return BlockRef{Number: t.BlockNumber, Hash: t.BlockHash}
}

// DecodeTransfer decodes an ERC-20 Transfer(address indexed from, address
// indexed to, uint256 value) log: three topics (the event, from, to, each
// address left-padded with zeros) and 32 bytes of data (the value).
func DecodeTransfer(l Log) (Transfer, error) {
	if len(l.Topics) == 0 || l.Topics[0] != TransferTopic {
		return Transfer{}, ErrNotTransfer
	}
	if len(l.Topics) != 3 || len(l.Data) != 32 {
		return Transfer{}, fmt.Errorf("%w: %d topics and %d data bytes, want 3 and 32", ErrNotTransfer, len(l.Topics), len(l.Data))
	}
	from, err := topicAddress(l.Topics[1])
	if err != nil {
		return Transfer{}, fmt.Errorf("transfer from: %w", err)
	}
	to, err := topicAddress(l.Topics[2])
	if err != nil {
		return Transfer{}, fmt.Errorf("transfer to: %w", err)
	}
	return Transfer{
		Token:       l.Address,
		From:        from,
		To:          to,
		Value:       new(big.Int).SetBytes(l.Data),
		BlockNumber: l.BlockNumber,
		BlockHash:   l.BlockHash,
		TxHash:      l.TxHash,
		Index:       l.Index,
	}, nil
}

// AddressTopic returns a as an indexed event argument: 12 zero bytes and
// the address.
func AddressTopic(a Address) Hash {
	var h Hash
	copy(h[12:], a[:])
	return h
}

// topicAddress reads an indexed address argument, refusing dirty upper
// bytes (no compiler emits them; a log with them is not what it claims).
func topicAddress(h Hash) (Address, error) {
	for _, b := range h[:12] {
		if b != 0 {
			return Address{}, fmt.Errorf("%w: topic %s is not a left-padded address", ErrMalformed, h)
		}
	}
	return Address(h[12:]), nil
}

// decodeUint reads an ABI-encoded uint (one 32-byte word) that must fit in
// bits bits.
func decodeUint(ret []byte, bits int) (*big.Int, error) {
	if len(ret) != 32 {
		return nil, fmt.Errorf("%w: %d bytes returned, want one 32-byte word", ErrMalformed, len(ret))
	}
	v := new(big.Int).SetBytes(ret)
	if v.BitLen() > bits {
		return nil, fmt.Errorf("%w: returned value %s exceeds %d bits", ErrMalformed, v, bits)
	}
	return v, nil
}

// sortTransfers orders transfers by block number, then log index.
func sortTransfers(ts []Transfer) {
	slices.SortFunc(ts, func(a, b Transfer) int {
		if c := cmp.Compare(a.BlockNumber, b.BlockNumber); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
}
