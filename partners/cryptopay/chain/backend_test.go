package chain_test

import (
	"context"
	"io"
	"math/big"
	"net"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chainsim"
	"github.com/qrswitch/qrswitch/partners/cryptopay/ganachetest"
)

// shared is the ganache node of the tests that neither stop its miner nor
// revert it.
var shared ganachetest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Close()
	os.Exit(code)
}

// backstop bounds every wait; tests decide on events, this only keeps a
// broken test from hanging.
const backstop = 45 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), backstop)
	t.Cleanup(cancel)
	return ctx
}

// payment is one transfer for backend.payTogether.
type payment struct {
	to    chain.Address
	value int64
}

// backend is a chain the watcher tests run against: ganache or chainsim.
type backend interface {
	rpcURL() string
	wsURL() string
	chainID() uint64
	token() chain.Address
	// pay sends value base units from payer i to to, mined in a new block,
	// and returns the transaction hash.
	pay(t *testing.T, payer int, to chain.Address, value int64) chain.Hash
	// payTogether mines the payments in one new block.
	payTogether(t *testing.T, ps []payment) []chain.Hash
	// mine mines n empty blocks.
	mine(t *testing.T, n int)
	// checkpoint returns a function that takes the chain back to now,
	// dropping the blocks mined since (no new block).
	checkpoint(t *testing.T) (rollback func(t *testing.T))
	head(t *testing.T) chain.Header
}

// ganacheBackend drives a ganache node.
type ganacheBackend struct{ n *ganachetest.Node }

func (g ganacheBackend) rpcURL() string       { return g.n.URL }
func (g ganacheBackend) wsURL() string        { return g.n.WSURL }
func (g ganacheBackend) chainID() uint64      { return g.n.ChainID }
func (g ganacheBackend) token() chain.Address { return g.n.Token }

func (g ganacheBackend) pay(t *testing.T, payer int, to chain.Address, value int64) chain.Hash {
	t.Helper()
	tx := g.n.Transfer(t, payer, to, big.NewInt(value))
	g.n.Mined(t, tx)
	return tx
}

func (g ganacheBackend) payTogether(t *testing.T, ps []payment) []chain.Hash {
	t.Helper()
	g.n.StopMiner(t)
	txs := make([]chain.Hash, len(ps))
	for i, p := range ps {
		txs[i] = g.n.Transfer(t, 1+i%(len(g.n.Accounts)-1), p.to, big.NewInt(p.value))
	}
	g.n.StartMiner(t)
	for _, tx := range txs {
		g.n.Mined(t, tx)
	}
	return txs
}

func (g ganacheBackend) mine(t *testing.T, n int) { g.n.Mine(t, n) }

func (g ganacheBackend) checkpoint(t *testing.T) func(*testing.T) {
	id := g.n.Snapshot(t)
	return func(t *testing.T) { g.n.Revert(t, id) }
}

func (g ganacheBackend) head(t *testing.T) chain.Header { return g.n.Head(t) }

// simBackend drives a chainsim served on loopback.
type simBackend struct {
	sim *chainsim.Sim
	srv *httptest.Server
}

func newSim(t *testing.T, c chainsim.Config) simBackend {
	sim := chainsim.New(c)
	srv := httptest.NewServer(sim)
	t.Cleanup(func() {
		sim.Close()
		srv.Close()
	})
	return simBackend{sim: sim, srv: srv}
}

func (s simBackend) rpcURL() string       { return s.srv.URL }
func (s simBackend) wsURL() string        { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }
func (s simBackend) chainID() uint64      { return s.sim.Config().ChainID }
func (s simBackend) token() chain.Address { return s.sim.Config().Token }

// payer returns the address paying as payer i: the customer for 0,
// otherwise an address funded from the customer on first use.
func (s simBackend) payer(t *testing.T, i int) chain.Address {
	if i == 0 {
		return s.sim.Config().Customer
	}
	a := chain.Address{0xfe, byte(i)}
	if s.sim.BalanceOf(a).Sign() == 0 {
		if _, err := s.sim.Transfer(chainsim.TransferRequest{To: a, Value: big.NewInt(1_000_000_000_000)}); err != nil {
			t.Fatalf("funding payer %d: %v", i, err)
		}
	}
	return a
}

func (s simBackend) pay(t *testing.T, payer int, to chain.Address, value int64) chain.Hash {
	t.Helper()
	r, err := s.sim.Transfer(chainsim.TransferRequest{From: s.payer(t, payer), To: to, Value: big.NewInt(value)})
	if err != nil {
		t.Fatalf("sim Transfer: %v", err)
	}
	return r.TxHash
}

func (s simBackend) payTogether(t *testing.T, ps []payment) []chain.Hash {
	t.Helper()
	reqs := make([]chainsim.TransferRequest, len(ps))
	for i, p := range ps {
		reqs[i] = chainsim.TransferRequest{To: p.to, Value: big.NewInt(p.value)}
	}
	rs, err := s.sim.Transfers(reqs)
	if err != nil {
		t.Fatalf("sim Transfers: %v", err)
	}
	txs := make([]chain.Hash, len(rs))
	for i, r := range rs {
		txs[i] = r.TxHash
	}
	return txs
}

func (s simBackend) mine(t *testing.T, n int) { s.sim.Mine(n) }

func (s simBackend) checkpoint(t *testing.T) func(*testing.T) {
	at := s.sim.Head().Number
	return func(t *testing.T) {
		depth := int(s.sim.Head().Number - at)
		if depth == 0 {
			return
		}
		if _, _, err := s.sim.Reorg(depth, 0, false); err != nil {
			t.Fatalf("sim Reorg: %v", err)
		}
	}
}

func (s simBackend) head(t *testing.T) chain.Header { return s.sim.Head() }

// backends returns the backends a scenario runs on. isolated asks for a
// ganache of the test's own (the scenario stops the miner or reverts).
func backends(t *testing.T, isolated bool) map[string]func(t *testing.T) backend {
	return map[string]func(t *testing.T) backend{
		"ganache": func(t *testing.T) backend {
			if isolated {
				return ganacheBackend{ganachetest.Start(t, ganachetest.Options{})}
			}
			return ganacheBackend{shared.Get(t)}
		},
		"chainsim": func(t *testing.T) backend {
			return newSim(t, chainsim.Config{})
		},
	}
}

// proxy is a TCP proxy on loopback that a test can cut: every connection
// through it is closed and new ones are dropped until restore.
type proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.sever()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	src.Close()
}

// cutOff closes every connection and drops new ones.
func (p *proxy) cutOff() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.sever()
}

func (p *proxy) sever() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// restore lets connections through again.
func (p *proxy) restore() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}
