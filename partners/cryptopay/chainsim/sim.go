package chainsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"sync"
	"time"

	"golang.org/x/crypto/sha3"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

// Defaults of Config.
const (
	DefaultChainID  = 1337
	DefaultDecimals = 6
	DefaultSymbol   = "QTT"
	DefaultName     = "qrswitch Simulated Token"
)

// DefaultToken and DefaultCustomer are the addresses of the simulated
// token contract and of the customer who pays from the controls.
var (
	DefaultToken    = mustAddress("0x5150000000000000000000000000000000000001")
	DefaultCustomer = mustAddress("0xc057000000000000000000000000000000000001")
)

// ErrBalance is returned for a transfer beyond the sender's balance.
var ErrBalance = errors.New("chainsim: transfer amount exceeds balance")

// Config sets up a Sim. The zero value works.
type Config struct {
	// ChainID is what eth_chainId answers. Default DefaultChainID.
	ChainID uint64
	// Token is the token contract's address. Default DefaultToken.
	Token chain.Address
	// Decimals, Symbol and Name describe the token. Defaults
	// DefaultDecimals (6), DefaultSymbol, DefaultName.
	Decimals uint8
	Symbol   string
	Name     string
	// Customer holds InitialSupply base units at genesis. Default
	// DefaultCustomer; InitialSupply default 10^9 whole tokens.
	Customer      chain.Address
	InitialSupply *big.Int
	// BlockTime, when positive, mines an empty block that often once Start
	// is called, so confirmations accrue on their own. Default 0: blocks
	// come only from transfers and the mine and reorg controls.
	BlockTime time.Duration
	// MaxLogRange bounds the blocks of one eth_getLogs range, as public
	// providers do. Default 10000.
	MaxLogRange uint64
	// Now is the clock of block timestamps. Default time.Now.
	Now func() time.Time
	// StateFile, when set, keeps the chain across restarts: New reads it
	// (if it is this chain's and token's) and Close writes it, as a node's
	// database would. A chain that forgot its blocks would look, to a
	// watcher that remembers them, like a reorganisation down to genesis.
	StateFile string
}

// TransferRequest is one transfer to make.
type TransferRequest struct {
	From  chain.Address // zero: the customer
	To    chain.Address
	Value *big.Int // base units
}

// Receipt is a mined transfer.
type Receipt struct {
	TxHash      chain.Hash    `json:"txHash"`
	BlockNumber uint64        `json:"blockNumber"`
	BlockHash   chain.Hash    `json:"blockHash"`
	LogIndex    uint64        `json:"logIndex"`
	From        chain.Address `json:"from"`
	To          chain.Address `json:"to"`
	Value       string        `json:"value"`
}

// Sim is a simulated chain. It is safe for concurrent use.
type Sim struct {
	cfg Config

	mu       sync.Mutex
	blocks   []*block              // the canonical chain, by number
	byHash   map[chain.Hash]*block // every block ever mined, orphans too
	balances map[chain.Address]*big.Int
	supply   *big.Int
	nonce    uint64 // makes every block and transaction hash unique
	sessions map[*session]struct{}

	stop    chan struct{}
	started bool
	closed  bool
	wg      sync.WaitGroup
}

type block struct {
	header chain.Header
	txs    []chain.Hash
	logs   []chain.Log
	// transfers are the requests mined in this block, for reinclusion.
	transfers []TransferRequest
}

// New returns a Sim with its genesis block.
func New(c Config) *Sim {
	if c.ChainID == 0 {
		c.ChainID = DefaultChainID
	}
	if c.Token.IsZero() {
		c.Token = DefaultToken
	}
	if c.Decimals == 0 {
		c.Decimals = DefaultDecimals
	}
	if c.Symbol == "" {
		c.Symbol = DefaultSymbol
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.Customer.IsZero() {
		c.Customer = DefaultCustomer
	}
	if c.InitialSupply == nil {
		c.InitialSupply = new(big.Int).Mul(big.NewInt(1_000_000_000), pow10(c.Decimals))
	}
	if c.MaxLogRange == 0 {
		c.MaxLogRange = 10000
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	s := &Sim{
		cfg:      c,
		byHash:   map[chain.Hash]*block{},
		balances: map[chain.Address]*big.Int{c.Customer: new(big.Int).Set(c.InitialSupply)},
		supply:   new(big.Int).Set(c.InitialSupply),
		sessions: map[*session]struct{}{},
		stop:     make(chan struct{}),
	}
	s.appendBlock(nil, nil)
	return s
}

// Open is New, with the chain read from c.StateFile when there is one.
func Open(c Config) (*Sim, error) {
	s := New(c)
	if c.StateFile == "" {
		return s, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.load(c.StateFile); err != nil {
		return nil, err
	}
	return s, nil
}

// Save writes the chain to Config.StateFile (nothing without one). Call it
// after Close, or whenever a copy should be on disk.
func (s *Sim) Save() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	return s.save(s.cfg.StateFile)
}

// Config returns the configuration in force, defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

// Start mines a block every Config.BlockTime until Close, when BlockTime
// is positive.
func (s *Sim) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.closed || s.cfg.BlockTime <= 0 {
		return
	}
	s.started = true
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.cfg.BlockTime)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.Mine(1)
			}
		}
	}()
}

// Close stops the block timer and closes every WebSocket connection.
func (s *Sim) Close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.Disconnect()
	s.wg.Wait()
}

// Head returns the latest block's header.
func (s *Sim) Head() chain.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.head().header
}

func (s *Sim) head() *block { return s.blocks[len(s.blocks)-1] }

// BalanceOf returns a's token balance in base units.
func (s *Sim) BalanceOf(a chain.Address) *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.balance(a)
}

func (s *Sim) balance(a chain.Address) *big.Int {
	if b, ok := s.balances[a]; ok {
		return new(big.Int).Set(b)
	}
	return new(big.Int)
}

// Transfer mines one transfer in a new block.
func (s *Sim) Transfer(r TransferRequest) (Receipt, error) {
	rs, err := s.Transfers([]TransferRequest{r})
	if err != nil {
		return Receipt{}, err
	}
	return rs[0], nil
}

// Transfers mines the transfers, in order, in one new block. Either all
// are mined or none.
func (s *Sim) Transfers(rs []TransferRequest) ([]Receipt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Check against the balances as they will be, transfer by transfer.
	pending := map[chain.Address]*big.Int{}
	bal := func(a chain.Address) *big.Int {
		if b, ok := pending[a]; ok {
			return b
		}
		b := s.balance(a)
		pending[a] = b
		return b
	}
	for i := range rs {
		if rs[i].From.IsZero() {
			rs[i].From = s.cfg.Customer
		}
		if rs[i].Value == nil || rs[i].Value.Sign() < 0 {
			return nil, fmt.Errorf("chainsim: transfer %d: value must be zero or more", i)
		}
		from := bal(rs[i].From)
		if from.Cmp(rs[i].Value) < 0 {
			return nil, fmt.Errorf("%w: transfer %d of %s from %s holding %s", ErrBalance, i, rs[i].Value, rs[i].From, from)
		}
		from.Sub(from, rs[i].Value)
		to := bal(rs[i].To)
		to.Add(to, rs[i].Value)
	}
	for a, b := range pending {
		s.balances[a] = b
	}
	b := s.appendBlock(rs, nil)
	receipts := make([]Receipt, len(rs))
	for i, l := range b.logs {
		receipts[i] = Receipt{
			TxHash: l.TxHash, BlockNumber: l.BlockNumber, BlockHash: l.BlockHash, LogIndex: l.Index,
			From: rs[i].From, To: rs[i].To, Value: rs[i].Value.String(),
		}
	}
	return receipts, nil
}

// Mine mines n empty blocks and returns the new head.
func (s *Sim) Mine(n int) chain.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 0; i < n; i++ {
		s.appendBlock(nil, nil)
	}
	return s.head().header
}

// Reorg replaces the last depth blocks (never genesis) by blocks new
// ones. With reinclude, the removed blocks' transfers that still fit the
// balances are mined again, with their transaction hashes, in the first
// new block (blocks must then be at least 1). blocks 0 leaves the chain
// shorter, as ganache's evm_revert does; a real chain only switches to a
// longer one. It returns the new head and how many logs were removed.
func (s *Sim) Reorg(depth, blocks int, reinclude bool) (chain.Header, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if depth < 1 || depth > len(s.blocks)-1 {
		return chain.Header{}, 0, fmt.Errorf("chainsim: reorg depth %d: the chain has %d blocks after genesis", depth, len(s.blocks)-1)
	}
	if blocks < 0 || (reinclude && blocks < 1) {
		return chain.Header{}, 0, fmt.Errorf("chainsim: reorg to %d new blocks (reinclude %t)", blocks, reinclude)
	}
	removed := s.blocks[len(s.blocks)-depth:]
	s.blocks = s.blocks[:len(s.blocks)-depth]
	var again []TransferRequest
	var againTxs []chain.Hash
	var removedLogs []chain.Log
	for i := len(removed) - 1; i >= 0; i-- {
		b := removed[i]
		// Undo the balances, newest first.
		for j := len(b.transfers) - 1; j >= 0; j-- {
			t := b.transfers[j]
			s.add(t.To, new(big.Int).Neg(t.Value))
			s.add(t.From, t.Value)
		}
	}
	for _, b := range removed {
		again = append(again, b.transfers...)
		againTxs = append(againTxs, b.txs...)
		for _, l := range b.logs {
			l.Removed = true
			removedLogs = append(removedLogs, l)
		}
	}
	s.notifyLogs(removedLogs)
	var first []TransferRequest
	var firstTxs []chain.Hash
	if reinclude {
		for i, t := range again {
			if s.balance(t.From).Cmp(t.Value) >= 0 {
				s.add(t.From, new(big.Int).Neg(t.Value))
				s.add(t.To, t.Value)
				first = append(first, t)
				firstTxs = append(firstTxs, againTxs[i])
			}
		}
	}
	for i := 0; i < blocks; i++ {
		if i == 0 {
			s.appendBlock(first, firstTxs)
		} else {
			s.appendBlock(nil, nil)
		}
	}
	return s.head().header, len(removedLogs), nil
}

func (s *Sim) add(a chain.Address, v *big.Int) {
	b, ok := s.balances[a]
	if !ok {
		b = new(big.Int)
		s.balances[a] = b
	}
	b.Add(b, v)
}

// appendBlock mines a block with the transfers on the head and notifies
// subscribers. txs, when not nil, are the transactions' hashes (a
// transaction mined again after a reorganisation keeps its hash);
// otherwise new ones are made. The callers have moved the balances
// already; they hold mu.
func (s *Sim) appendBlock(transfers []TransferRequest, txs []chain.Hash) *block {
	var parent chain.Header
	number := uint64(0)
	if len(s.blocks) > 0 {
		parent = s.head().header
		number = parent.Number + 1
	}
	ts := uint64(s.cfg.Now().Unix())
	if ts < parent.Time {
		ts = parent.Time
	}
	s.nonce++
	b := &block{transfers: transfers}
	if txs == nil {
		txs = make([]chain.Hash, len(transfers))
		for i := range transfers {
			s.nonce++
			txs[i] = hash([]byte("tx"), u64(s.cfg.ChainID), u64(s.nonce), transfers[i].From[:], transfers[i].To[:], transfers[i].Value.Bytes())
		}
	}
	var txRoot []byte
	for _, tx := range txs {
		txRoot = append(txRoot, tx[:]...)
	}
	b.header = chain.Header{
		Number:     number,
		ParentHash: parent.Hash,
		Time:       ts,
		Hash:       hash([]byte("block"), u64(s.cfg.ChainID), parent.Hash[:], u64(number), u64(ts), u64(s.nonce), txRoot),
	}
	b.txs = txs
	b.logs = s.logsOf(b.header, txs, transfers)
	s.blocks = append(s.blocks, b)
	s.byHash[b.header.Hash] = b
	s.notifyLogs(b.logs)
	s.notifyHead(b.header)
	return b
}

// logsOf returns the Transfer logs of a block's transfers.
func (s *Sim) logsOf(h chain.Header, txs []chain.Hash, transfers []TransferRequest) []chain.Log {
	var logs []chain.Log
	for i, t := range transfers {
		logs = append(logs, chain.Log{
			Address:     s.cfg.Token,
			Topics:      []chain.Hash{chain.TransferTopic, chain.AddressTopic(t.From), chain.AddressTopic(t.To)},
			Data:        t.Value.FillBytes(make([]byte, 32)),
			BlockNumber: h.Number,
			BlockHash:   h.Hash,
			TxHash:      txs[i],
			TxIndex:     uint64(i),
			Index:       uint64(i),
		})
	}
	return logs
}

func hash(parts ...[]byte) chain.Hash {
	h := sha3.NewLegacyKeccak256()
	for _, p := range parts {
		h.Write(u64(uint64(len(p))))
		h.Write(p)
	}
	var out chain.Hash
	h.Sum(out[:0])
	return out
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func pow10(d uint8) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(d)), nil)
}

func mustAddress(s string) chain.Address {
	a, err := hdkey.ParseAddress(s)
	if err != nil {
		panic(err)
	}
	return a
}
