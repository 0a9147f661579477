package chainsim

import (
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"

	"github.com/coder/websocket"

	"github.com/qrswitch/qrswitch/partners/cryptopay/chain"
)

// maxBody bounds every request body the sim reads.
const maxBody = 1 << 20

// ServeHTTP serves JSON-RPC on "/" (POST, or GET upgraded to a WebSocket)
// and the customer controls under /sim/v1/.
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/" && r.Method == http.MethodPost:
		s.serveRPC(w, r)
	case r.URL.Path == "/" && r.Method == http.MethodGet && strings.EqualFold(r.Header.Get("Upgrade"), "websocket"):
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return // Accept has answered
		}
		s.serveWS(conn)
	case r.URL.Path == "/sim/v1/chain" && r.Method == http.MethodGet:
		s.serveChain(w)
	case r.URL.Path == "/sim/v1/transfer" && r.Method == http.MethodPost:
		s.serveTransfer(w, r)
	case r.URL.Path == "/sim/v1/transfers" && r.Method == http.MethodPost:
		s.serveTransfers(w, r)
	case r.URL.Path == "/sim/v1/mine" && r.Method == http.MethodPost:
		s.serveMine(w, r)
	case r.URL.Path == "/sim/v1/reorg" && r.Method == http.MethodPost:
		s.serveReorg(w, r)
	case r.URL.Path == "/sim/v1/disconnect" && r.Method == http.MethodPost:
		writeValue(w, http.StatusOK, map[string]int{"closed": s.Disconnect()})
	default:
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	}
}

func (s *Sim) serveRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body could not be read: "+err.Error())
		return
	}
	answer := s.handlePayload(body, nil)
	if answer == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, answer)
}

// ChainInfo is what GET /sim/v1/chain answers.
type ChainInfo struct {
	ChainID  uint64        `json:"chainId"`
	Token    chain.Address `json:"token"`
	Decimals uint8         `json:"decimals"`
	Symbol   string        `json:"symbol"`
	Customer chain.Address `json:"customer"`
	Head     chain.Header  `json:"head"`
}

func (s *Sim) serveChain(w http.ResponseWriter) {
	writeValue(w, http.StatusOK, ChainInfo{
		ChainID: s.cfg.ChainID, Token: s.cfg.Token, Decimals: s.cfg.Decimals,
		Symbol: s.cfg.Symbol, Customer: s.cfg.Customer, Head: s.Head(),
	})
}

// transferJSON is one transfer of the controls.
type transferJSON struct {
	From   *chain.Address `json:"from"`
	To     *chain.Address `json:"to"`
	Amount string         `json:"amount"` // token units, such as "12.5"
	Value  string         `json:"value"`  // base units
}

func (s *Sim) request(t transferJSON) (TransferRequest, error) {
	var r TransferRequest
	if t.To == nil {
		return r, errors.New("to is required")
	}
	r.To = *t.To
	if t.From != nil {
		r.From = *t.From
	}
	switch {
	case t.Amount != "" && t.Value != "":
		return r, errors.New("give amount (token units) or value (base units), not both")
	case t.Amount != "":
		v, err := chain.ParseAmount(t.Amount, s.cfg.Decimals)
		if err != nil {
			return r, err
		}
		r.Value = v
	case t.Value != "":
		v, ok := new(big.Int).SetString(t.Value, 10)
		if !ok || v.Sign() < 0 || v.BitLen() > 256 {
			return r, errors.New("value must be a non-negative integer of base units")
		}
		r.Value = v
	default:
		return r, errors.New("amount (token units) or value (base units) is required")
	}
	return r, nil
}

func (s *Sim) serveTransfer(w http.ResponseWriter, r *http.Request) {
	var t transferJSON
	if !readJSON(w, r, &t) {
		return
	}
	req, err := s.request(t)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	receipt, err := s.Transfer(req)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeValue(w, http.StatusOK, receipt)
}

func (s *Sim) serveTransfers(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Transfers []transferJSON `json:"transfers"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	if len(body.Transfers) == 0 {
		writeError(w, http.StatusBadRequest, "transfers must list at least one transfer")
		return
	}
	reqs := make([]TransferRequest, len(body.Transfers))
	for i, t := range body.Transfers {
		var err error
		if reqs[i], err = s.request(t); err != nil {
			writeError(w, http.StatusBadRequest, "transfer "+strconv.Itoa(i)+": "+err.Error())
			return
		}
	}
	receipts, err := s.Transfers(reqs)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeValue(w, http.StatusOK, map[string]any{"receipts": receipts})
}

// maxMine bounds one mine or reorg control.
const maxMine = 100000

func (s *Sim) serveMine(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Blocks *int `json:"blocks"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	n := 1
	if body.Blocks != nil {
		n = *body.Blocks
	}
	if n < 1 || n > maxMine {
		writeError(w, http.StatusBadRequest, "blocks must be 1 to "+strconv.Itoa(maxMine))
		return
	}
	writeValue(w, http.StatusOK, map[string]any{"head": s.Mine(n)})
}

func (s *Sim) serveReorg(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Depth     int  `json:"depth"`
		Blocks    *int `json:"blocks"`
		Reinclude bool `json:"reinclude"`
	}
	if !readJSON(w, r, &body) {
		return
	}
	blocks := body.Depth + 1
	if body.Blocks != nil {
		blocks = *body.Blocks
	}
	if blocks > maxMine {
		writeError(w, http.StatusBadRequest, "blocks must be at most "+strconv.Itoa(maxMine))
		return
	}
	head, removed, err := s.Reorg(body.Depth, blocks, body.Reinclude)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeValue(w, http.StatusOK, map[string]any{"head": head, "removedLogs": removed})
}

// readJSON decodes the body into v, refusing unknown fields; it answers
// 400 and returns false on failure.
func readJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "request body: "+err.Error())
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeValue(w http.ResponseWriter, status int, v any) {
	writeJSON(w, status, mustJSON(v))
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeValue(w, status, map[string]string{"error": msg})
}
