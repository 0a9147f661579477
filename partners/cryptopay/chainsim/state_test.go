package chainsim

import (
	"math/big"
	"path/filepath"
	"reflect"
	"testing"
)

// TestStateFile: a chain saved and opened again is the same chain (head,
// blocks, logs, balances), and goes on with fresh hashes.
func TestStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sim", "chain.json")
	s, err := Open(Config{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	to := mustAddress("0x00000000000000000000000000000000000000aa")
	r, err := s.Transfer(TransferRequest{To: to, Value: big.NewInt(42)})
	if err != nil {
		t.Fatal(err)
	}
	s.Mine(3)
	if _, _, err := s.Reorg(2, 3, false); err != nil {
		t.Fatal(err)
	}
	head := s.Head()
	s.Close()
	if err := s.Save(); err != nil {
		t.Fatalf("Save = %v", err)
	}

	again, err := Open(Config{StateFile: path})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if got := again.Head(); got != head {
		t.Fatalf("head after reopening = %+v, want %+v", got, head)
	}
	if got := again.BalanceOf(to); got.Int64() != 42 {
		t.Fatalf("balance after reopening = %s, want 42", got)
	}
	if got, want := again.byHash[r.BlockHash].logs, s.byHash[r.BlockHash].logs; !reflect.DeepEqual(got, want) {
		t.Fatalf("logs of the transfer's block = %+v, want %+v", got, want)
	}
	next := again.Mine(1)
	if next.ParentHash != head.Hash || next.Number != head.Number+1 {
		t.Fatalf("next block %+v does not follow the saved head %+v", next, head)
	}
	if _, seen := s.byHash[next.Hash]; seen {
		t.Fatal("a block hash repeated after reopening")
	}

	// Another chain's state is not taken.
	other, err := Open(Config{StateFile: path, ChainID: 99})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if other.Head().Number != 0 {
		t.Fatalf("a chain with another id took the state: head %d", other.Head().Number)
	}
}
