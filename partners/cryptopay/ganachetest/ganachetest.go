// Package ganachetest starts ganache, the npm Ethereum simulator pinned in
// internal/jstest, for the cryptopay tests: a real EVM node on a free
// loopback port (deterministic wallet, fixed chain id, offline) running
// the ERC-20 token of partners/cryptopay/testdata/erc20, with helpers to
// pay, mine, stop the miner and revert to snapshots. It fails the test
// loudly when Node.js or the npm packages are missing.
package ganachetest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/sha3"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// Mnemonic is the BIP-39 mnemonic of ganache's deterministic wallet
// (--wallet.deterministic); account i is m/44'/60'/0'/0/i.
const Mnemonic = "myth like bonus scare over problem client lizard pioneer submit female collect"

// Defaults of Options.
const (
	DefaultChainID  = 1337
	DefaultDecimals = 6
	DefaultAccounts = 10
)

// InitialBalance is how many whole tokens every account is minted at
// start.
const InitialBalance = 1_000_000

// startTimeout is a backstop for ganache to start and deploy; it takes
// 1-2 s on a quiet machine.
const startTimeout = 60 * time.Second

// Options configure a ganache node.
type Options struct {
	// ChainID is the chain id the node reports. Default DefaultChainID.
	ChainID uint64
	// Decimals are the token's decimals. Default DefaultDecimals (6).
	Decimals uint8
	// Accounts is how many unlocked accounts the wallet has. Default
	// DefaultAccounts (10).
	Accounts int
	// Manual stops the miner once the token is deployed: transactions
	// wait in the pool until Mine or StartMiner.
	Manual bool
}

// Node is a running ganache with the test token deployed. Its helpers
// fail the test on any error.
type Node struct {
	// URL is the HTTP JSON-RPC endpoint, WSURL the WebSocket one.
	URL   string
	WSURL string
	// ChainID is the chain id, Token the token's address, Decimals its
	// decimals, Accounts the unlocked accounts (each holding
	// InitialBalance tokens).
	ChainID  uint64
	Token    chain.Address
	Decimals uint8
	Accounts []chain.Address

	rpc    *chain.Client
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	exited chan struct{}
	once   sync.Once
}

// Start starts ganache for t and stops it when t ends.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	n := launch(t, o)
	t.Cleanup(n.Kill)
	return n
}

// Shared is one ganache node for a whole test binary, started by the first
// test that asks for it. Tests sharing it must not stop the miner or
// revert: use Start for those. Call Close from TestMain after m.Run.
type Shared struct {
	Options Options
	mu      sync.Mutex
	node    *Node
}

// Get returns the shared node, starting it on the first call.
func (s *Shared) Get(t testing.TB) *Node {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node == nil {
		s.node = launch(t, s.Options)
	}
	return s.node
}

// Close stops the shared node, if it was started.
func (s *Shared) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.node != nil {
		s.node.Kill()
		s.node = nil
	}
}

func launch(t testing.TB, o Options) *Node {
	t.Helper()
	if o.ChainID == 0 {
		o.ChainID = DefaultChainID
	}
	if o.Decimals == 0 {
		o.Decimals = DefaultDecimals
	}
	if o.Accounts <= 0 {
		o.Accounts = DefaultAccounts
	}
	options, err := json.Marshal(map[string]any{
		"logging": map[string]any{"quiet": true},
		"wallet":  map[string]any{"deterministic": true, "totalAccounts": o.Accounts},
		"chain":   map[string]any{"chainId": o.ChainID, "vmErrorsOnRPCResponse": true},
		"miner":   map[string]any{"instamine": "eager"},
	})
	if err != nil {
		t.Fatalf("encoding ganache options: %v", err)
	}
	cmd := jstest.Command(context.Background(), t, filepath.Join(dir(), "testdata", "ganache.js"), string(options))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatalf("ganache stdin: %v", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("ganache stdout: %v", err)
	}
	n := &Node{
		ChainID:  o.ChainID,
		Decimals: o.Decimals,
		cmd:      cmd,
		stdin:    stdin,
		stderr:   &syncBuffer{},
		exited:   make(chan struct{}),
	}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting ganache (node %s): %v", cmd.Path, err)
	}
	go func() {
		cmd.Wait()
		close(n.exited)
	}()

	ready := make(chan int, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		var msg struct{ Port int }
		if err == nil && json.Unmarshal([]byte(line), &msg) == nil && msg.Port > 0 {
			ready <- msg.Port
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case port := <-ready:
		n.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		n.WSURL = "ws://127.0.0.1:" + strconv.Itoa(port)
	case <-n.exited:
		t.Fatalf("ganache exited before listening: %s", n.stderr.String())
	case <-time.After(startTimeout):
		n.Kill()
		t.Fatalf("ganache did not listen within %s: %s", startTimeout, n.stderr.String())
	}
	n.rpc = chain.NewClient(chain.NewHTTP(chain.HTTPConfig{URL: n.URL, Timeout: startTimeout}))
	n.setUp(t, o)
	return n
}

// setUp reads the accounts, deploys the token and mints every account its
// initial balance.
func (n *Node) setUp(t testing.TB, o Options) {
	t.Helper()
	n.Call(t, &n.Accounts, "eth_accounts")
	if len(n.Accounts) != o.Accounts {
		n.Kill()
		t.Fatalf("ganache has %d accounts, want %d", len(n.Accounts), o.Accounts)
	}
	art, err := LoadArtifact()
	if err != nil {
		n.Kill()
		t.Fatal(err)
	}
	code := append(art.Bytecode, word(new(big.Int).SetUint64(uint64(o.Decimals)))...)
	tx := n.send(t, map[string]string{"from": n.Accounts[0].String(), "data": "0x" + hex.EncodeToString(code), "gas": "0x300000"})
	var receipt struct {
		ContractAddress *chain.Address `json:"contractAddress"`
		Status          string         `json:"status"`
	}
	n.Call(t, &receipt, "eth_getTransactionReceipt", tx)
	if receipt.ContractAddress == nil || receipt.Status != "0x1" {
		n.Kill()
		t.Fatalf("deploying the token: receipt status %q, contract %v", receipt.Status, receipt.ContractAddress)
	}
	n.Token = *receipt.ContractAddress
	each := new(big.Int).Mul(big.NewInt(InitialBalance), n.Unit())
	for i := range n.Accounts {
		n.call(t, 0, "mint(address,uint256)", addressWord(n.Accounts[i]), word(each))
	}
	if o.Manual {
		n.StopMiner(t)
	}
}

// Kill stops ganache and waits for it to exit. It may be called more than
// once.
func (n *Node) Kill() {
	n.once.Do(func() {
		n.stdin.Close()
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			n.cmd.Process.Kill()
			<-n.exited
		}
	})
}

// RPC returns a client of the node's HTTP endpoint.
func (n *Node) RPC() *chain.Client { return n.rpc }

// Unit returns one whole token in base units (10^Decimals).
func (n *Node) Unit() *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n.Decimals)), nil)
}

// Call makes a JSON-RPC call.
func (n *Node) Call(t testing.TB, result any, method string, params ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := n.rpc.Caller().Call(ctx, result, method, params...); err != nil {
		t.Fatalf("ganache %s: %v", method, err)
	}
}

// Transfer sends a token transfer of value base units from account from to
// to and returns its transaction hash. With the miner running it is mined
// (in a block of its own) when Transfer returns; with the miner stopped
// it waits in the pool.
func (n *Node) Transfer(t testing.TB, from int, to chain.Address, value *big.Int) chain.Hash {
	t.Helper()
	return n.call(t, from, "transfer(address,uint256)", addressWord(to), word(value))
}

// call sends a transaction calling the token from account from.
func (n *Node) call(t testing.TB, from int, signature string, args ...[]byte) chain.Hash {
	t.Helper()
	data := selector(signature)
	for _, a := range args {
		data = append(data, a...)
	}
	return n.send(t, map[string]string{
		"from": n.Accounts[from].String(),
		"to":   n.Token.String(),
		"data": "0x" + hex.EncodeToString(data),
		"gas":  "0x30000",
	})
}

func (n *Node) send(t testing.TB, tx map[string]string) chain.Hash {
	t.Helper()
	var h chain.Hash
	n.Call(t, &h, "eth_sendTransaction", tx)
	return h
}

// Receipt is the part of a transaction receipt tests look at.
type Receipt struct {
	BlockNumber uint64
	BlockHash   chain.Hash
	Succeeded   bool
}

// Receipt returns tx's receipt; ok is false while it is not mined.
func (n *Node) Receipt(t testing.TB, tx chain.Hash) (r Receipt, ok bool) {
	t.Helper()
	var raw *struct {
		BlockNumber string     `json:"blockNumber"`
		BlockHash   chain.Hash `json:"blockHash"`
		Status      string     `json:"status"`
	}
	n.Call(t, &raw, "eth_getTransactionReceipt", tx)
	if raw == nil {
		return Receipt{}, false
	}
	num, err := strconv.ParseUint(raw.BlockNumber, 0, 64)
	if err != nil {
		t.Fatalf("receipt of %s: block number %q: %v", tx, raw.BlockNumber, err)
	}
	return Receipt{BlockNumber: num, BlockHash: raw.BlockHash, Succeeded: raw.Status == "0x1"}, true
}

// Mined returns tx's receipt, failing t when tx is not mined.
func (n *Node) Mined(t testing.TB, tx chain.Hash) Receipt {
	t.Helper()
	r, ok := n.Receipt(t, tx)
	if !ok {
		t.Fatalf("transaction %s is not mined", tx)
	}
	if !r.Succeeded {
		t.Fatalf("transaction %s failed", tx)
	}
	return r
}

// Mine mines blocks blocks (evm_mine), each with whatever the pool holds
// (empty when the miner is running).
func (n *Node) Mine(t testing.TB, blocks int) {
	t.Helper()
	n.Call(t, nil, "evm_mine", map[string]int{"blocks": blocks})
}

// StopMiner stops mining: transactions wait in the pool, so that several
// land in one block.
func (n *Node) StopMiner(t testing.TB) {
	t.Helper()
	n.Call(t, nil, "miner_stop")
}

// StartMiner starts mining again; what the pool holds is mined at once.
func (n *Node) StartMiner(t testing.TB) {
	t.Helper()
	n.Call(t, nil, "miner_start")
}

// Snapshot saves the chain's state (evm_snapshot) and returns its id.
func (n *Node) Snapshot(t testing.TB) string {
	t.Helper()
	var id string
	n.Call(t, &id, "evm_snapshot")
	return id
}

// Revert returns the chain to snapshot id (evm_revert): the blocks mined
// since are gone, as in a reorganisation.
func (n *Node) Revert(t testing.TB, id string) {
	t.Helper()
	var ok bool
	n.Call(t, &ok, "evm_revert", id)
	if !ok {
		t.Fatalf("evm_revert %s = false, want true", id)
	}
}

// Head returns the latest block's header.
func (n *Node) Head(t testing.TB) chain.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	h, err := n.rpc.LatestHeader(ctx)
	if err != nil {
		t.Fatalf("ganache head: %v", err)
	}
	return h
}

// BalanceOf returns owner's token balance in base units.
func (n *Node) BalanceOf(t testing.TB, owner chain.Address) *big.Int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	v, err := n.rpc.BalanceOf(ctx, n.Token, owner)
	if err != nil {
		t.Fatalf("ganache balanceOf: %v", err)
	}
	return v
}

// Artifact is the compiled test token.
type Artifact struct {
	ABI      json.RawMessage
	Bytecode []byte
}

// LoadArtifact reads testdata/erc20/Token.json.
func LoadArtifact() (*Artifact, error) {
	raw, err := os.ReadFile(ArtifactPath())
	if err != nil {
		return nil, fmt.Errorf("reading token artifact: %w", err)
	}
	var a struct {
		ABI      json.RawMessage `json:"abi"`
		Bytecode string          `json:"bytecode"`
	}
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("decoding token artifact: %w", err)
	}
	if len(a.Bytecode) < 2 {
		return nil, errors.New("token artifact has no bytecode")
	}
	code, err := hex.DecodeString(a.Bytecode[2:])
	if err != nil {
		return nil, fmt.Errorf("token artifact bytecode: %w", err)
	}
	return &Artifact{ABI: a.ABI, Bytecode: code}, nil
}

// TokenDir is partners/cryptopay/testdata/erc20: Token.sol, build.js and
// the compiled Token.json.
func TokenDir() string {
	return filepath.Join(dir(), "..", "testdata", "erc20")
}

// ArtifactPath is the compiled token, TokenDir()/Token.json.
func ArtifactPath() string {
	return filepath.Join(TokenDir(), "Token.json")
}

func dir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("ganachetest: no caller information")
	}
	return filepath.Dir(file)
}

// selector returns the first four bytes of the Keccak-256 of a function
// signature.
func selector(signature string) []byte {
	h := sha3.NewLegacyKeccak256()
	h.Write([]byte(signature))
	return h.Sum(nil)[:4]
}

// word ABI-encodes an unsigned integer.
func word(v *big.Int) []byte {
	return v.FillBytes(make([]byte, 32))
}

// addressWord ABI-encodes an address.
func addressWord(a chain.Address) []byte {
	return append(make([]byte, 12), a[:]...)
}

// syncBuffer is a bytes.Buffer safe for the process's writer and the
// test's reader.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
