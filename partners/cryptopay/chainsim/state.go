package chainsim

import (
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// state is what Config.StateFile keeps of a chain: its canonical blocks
// (headers, transaction hashes and transfers; logs are derived from them)
// and the nonce that keeps new hashes unique. Balances are replayed from
// the transfers, from the genesis balance of the customer.
type state struct {
	ChainID uint64        `json:"chainId"`
	Token   chain.Address `json:"token"`
	Nonce   uint64        `json:"nonce"`
	Blocks  []stateBlock  `json:"blocks"`
}

type stateBlock struct {
	Header    chain.Header    `json:"header"`
	Txs       []chain.Hash    `json:"txs,omitempty"`
	Transfers []stateTransfer `json:"transfers,omitempty"`
}

type stateTransfer struct {
	From  chain.Address `json:"from"`
	To    chain.Address `json:"to"`
	Value string        `json:"value"`
}

// load replaces the genesis-only chain by the one in the state file, if
// there is one for this chain and token. Called by New before anyone can
// see the chain.
func (s *Sim) load(path string) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("chainsim: state file %s: %w", path, err)
	}
	if st.ChainID != s.cfg.ChainID || st.Token != s.cfg.Token || len(st.Blocks) == 0 {
		return nil // another chain's: start afresh
	}
	s.blocks, s.byHash = nil, map[chain.Hash]*block{}
	s.balances = map[chain.Address]*big.Int{s.cfg.Customer: new(big.Int).Set(s.cfg.InitialSupply)}
	for _, sb := range st.Blocks {
		blk := &block{header: sb.Header, txs: sb.Txs}
		for i, t := range sb.Transfers {
			v, ok := new(big.Int).SetString(t.Value, 10)
			if !ok || i >= len(sb.Txs) {
				return fmt.Errorf("chainsim: state file %s: block %d is malformed", path, sb.Header.Number)
			}
			blk.transfers = append(blk.transfers, TransferRequest{From: t.From, To: t.To, Value: v})
			s.add(t.From, new(big.Int).Neg(v))
			s.add(t.To, v)
		}
		blk.logs = s.logsOf(blk.header, blk.txs, blk.transfers)
		s.blocks = append(s.blocks, blk)
		s.byHash[blk.header.Hash] = blk
	}
	s.nonce = st.Nonce
	return nil
}

// save writes the chain to path (a temporary file renamed over it).
func (s *Sim) save(path string) error {
	s.mu.Lock()
	st := state{ChainID: s.cfg.ChainID, Token: s.cfg.Token, Nonce: s.nonce}
	for _, b := range s.blocks {
		sb := stateBlock{Header: b.header, Txs: b.txs}
		for _, t := range b.transfers {
			sb.Transfers = append(sb.Transfers, stateTransfer{From: t.From, To: t.To, Value: t.Value.String()})
		}
		st.Blocks = append(st.Blocks, sb)
	}
	s.mu.Unlock()
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
