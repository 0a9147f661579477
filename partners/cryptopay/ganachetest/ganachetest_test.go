package ganachetest

import (
	"bytes"
	"context"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// TestArtifactUpToDate rebuilds the token with the pinned solc and checks
// the committed Token.json is what it produces.
func TestArtifactUpToDate(t *testing.T) {
	out := filepath.Join(t.TempDir(), "Token.json")
	jstest.Run(t, filepath.Join(TokenDir(), "build.js"), nil, out)
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(ArtifactPath())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("build.js output differs from the committed %s: run `NODE_PATH=internal/jstest/node_modules node %s`", ArtifactPath(), filepath.Join(TokenDir(), "build.js"))
	}
}

func TestNode(t *testing.T) {
	n := Start(t, Options{ChainID: 4242, Decimals: 8})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if id, err := n.RPC().ChainID(ctx); err != nil || id != 4242 {
		t.Errorf("ChainID() = %d, %v, want 4242", id, err)
	}
	if d, err := n.RPC().Decimals(ctx, n.Token); err != nil || d != 8 {
		t.Errorf("Decimals() = %d, %v, want 8", d, err)
	}
	initial := new(big.Int).Mul(big.NewInt(InitialBalance), n.Unit())
	for i, a := range n.Accounts {
		if got := n.BalanceOf(t, a); got.Cmp(initial) != 0 {
			t.Errorf("BalanceOf(account %d) = %s, want %s", i, got, initial)
		}
	}

	to := chain.Address{0xaa, 0xbb}
	before := n.Head(t).Number
	tx := n.Transfer(t, 3, to, big.NewInt(12345))
	r := n.Mined(t, tx)
	if r.BlockNumber != before+1 {
		t.Errorf("transfer mined in block %d, want %d", r.BlockNumber, before+1)
	}
	if got := n.BalanceOf(t, to); got.Cmp(big.NewInt(12345)) != 0 {
		t.Errorf("BalanceOf(recipient) = %s, want 12345", got)
	}
	ts, err := n.RPC().Transfers(ctx, chain.TransferQuery{Token: n.Token, FromBlock: r.BlockNumber, ToBlock: r.BlockNumber})
	if err != nil || len(ts) != 1 {
		t.Fatalf("Transfers(block %d) = %v, %v, want one", r.BlockNumber, ts, err)
	}
	if got := ts[0]; got.From != n.Accounts[3] || got.To != to || got.Value.Int64() != 12345 || got.TxHash != tx || got.BlockHash != r.BlockHash {
		t.Errorf("transfer = %+v, want 12345 from %s to %s in tx %s", got, n.Accounts[3], to, tx)
	}

	// Two transfers in one block with the miner stopped.
	n.StopMiner(t)
	a := n.Transfer(t, 1, to, big.NewInt(1))
	b := n.Transfer(t, 2, to, big.NewInt(2))
	if _, ok := n.Receipt(t, a); ok {
		t.Errorf("transfer mined with the miner stopped")
	}
	n.StartMiner(t)
	ra, rb := n.Mined(t, a), n.Mined(t, b)
	if ra.BlockHash != rb.BlockHash {
		t.Errorf("transfers mined in blocks %d and %d, want one block", ra.BlockNumber, rb.BlockNumber)
	}

	// A snapshot and a revert drop the blocks mined since.
	snap := n.Snapshot(t)
	head := n.Head(t)
	n.Mine(t, 3)
	if got := n.Head(t).Number; got != head.Number+3 {
		t.Errorf("head after Mine(3) = %d, want %d", got, head.Number+3)
	}
	n.Revert(t, snap)
	if got := n.Head(t); got != head {
		t.Errorf("head after Revert = %+v, want %+v", got, head)
	}

	n.Kill()
	select {
	case <-n.exited:
	default:
		t.Errorf("ganache still running after Kill")
	}
}
