package cryptopay

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
	"github.com/qrswitch/qrswitch/partners/cryptopay/chainsim"
)

// Simulator builds the development chain: one token (the rail's address,
// decimals and currency), a customer holding a billion of it, blocks every
// sim_block_time so confirmations accrue, served where the partner's
// base_url points (JSON-RPC over HTTPS and WebSocket, and the customer's
// controls under /sim/v1/).
func (r *Rail) Simulator(env partners.SimEnv) (partners.Simulator, error) {
	id := r.opts.ChainID
	if id == 0 {
		id = chainsim.DefaultChainID
	}
	cfg := chainsim.Config{ChainID: id, Token: r.token, Decimals: r.decimals, Symbol: r.opts.Currency, BlockTime: r.opts.SimBlockTime}
	if env.DataDir != "" {
		// The chain outlives a restart of the switch, as a node's does.
		cfg.StateFile = filepath.Join(env.DataDir, "chain.json")
	}
	sim, err := chainsim.Open(cfg)
	if err != nil {
		return nil, err
	}
	sim.Start()
	return &simulator{Sim: sim, base: "https://" + env.Listen}, nil
}

type simulator struct {
	*chainsim.Sim
	base string
}

func (s *simulator) Handler() http.Handler { return s.Sim }
func (s *simulator) Close() error          { s.Sim.Close(); return s.Save() }
func (s *simulator) Describe() map[string]any {
	c := s.Config()
	return map[string]any{
		"rpc_url":   s.base + "/",
		"ws_url":    "wss" + s.base[len("https"):] + "/",
		"chain_id":  c.ChainID,
		"token":     c.Token.String(),
		"decimals":  c.Decimals,
		"currency":  c.Symbol,
		"customer":  c.Customer.String(),
		"chain":     s.base + "/sim/v1/chain",
		"transfer":  s.base + "/sim/v1/transfer",
		"transfers": s.base + "/sim/v1/transfers",
		"mine":      s.base + "/sim/v1/mine",
		"reorg":     s.base + "/sim/v1/reorg",
	}
}

// SupportKinds are the records support staff see: one per offered
// address, with every transfer to it, and the watcher's cursor.
func (r *Rail) SupportKinds() []string { return []string{kindPayment, kindCursor} }

// SupportView renders one record for support.
func (r *Rail) SupportView(_ context.Context, rec *partners.Record) (any, error) {
	switch rec.Kind {
	case kindPayment:
		p, err := paymentOf(rec)
		if err != nil {
			return nil, err
		}
		seen, conf := p.sums()
		return map[string]any{
			"tranId": p.TranID, "retailer": p.Retailer, "address": p.Address.String(), "derivationIndex": p.Index,
			"state": p.State, "due": r.format(p.due()), "received": r.format(seen), "confirmed": r.format(conf),
			"transfers": p.Transfers, "paidTx": p.PaidTx, "paidAt": p.PaidAt, "expiresAt": p.ExpiresAt,
			"watchedUntil": p.WatchUntil, "note": p.Note, "checkout": p.Checkout,
		}, nil
	case kindCursor:
		var d cursorData
		if err := decode(rec, &d); err != nil {
			return nil, err
		}
		st := r.Status()
		return map[string]any{"saved": chain.BlockRef{Number: d.Number, Hash: d.Hash}, "tip": st.Tip, "subscribed": st.Subscribed,
			"connections": st.Connections, "reorgs": st.Reorgs, "errors": st.Errors, "lastError": st.LastError}, nil
	}
	return nil, fmt.Errorf("kind %s is not shown", rec.Kind)
}
