package electrumsim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/qr"
)

// ScanRequest is what the customer app is asked to scan: a QR code payload,
// or a tranId directly, and the payment token the partner hands the switch.
type ScanRequest struct {
	QrCode              string `json:"qrCode,omitempty"`
	TranID              string `json:"tranId,omitempty"`
	PartnerPaymentToken string `json:"partnerPaymentToken,omitempty"`
}

// Validate checks that the request names a QR code or a tranId.
func (r *ScanRequest) Validate() error {
	if r.QrCode == "" && r.TranID == "" {
		return &wire.FieldError{Field: "qrCode", Reason: "is required (or tranId)"}
	}
	return nil
}

// ScanResult is the switch's answer to a scan notification, as received.
type ScanResult struct {
	// Status is the switch's HTTP status; 0 when no answer arrived (Err
	// then says why).
	Status      int
	ContentType string
	Body        []byte
	// Notification is the scan notification sent (nil when none was built).
	Notification *wire.ScanNotification
	Err          error
}

// ErrNoSwitch is the error of a scan when Config.SwitchURL is empty.
var ErrNoSwitch = errors.New("electrumsim: no switch URL configured")

// Scan plays the customer app: it reads the tranId from r's QR code (or
// takes r.TranID), builds a ScanNotification from the sim, and posts it to
// {SwitchURL}/qr/v1/scans with the scan credentials, within ScanTimeout. A
// request it cannot read is refused with a *wire.FieldError and nothing is
// sent; every notification sent is recorded in the ledger with the switch's
// status.
func (s *Sim) Scan(ctx context.Context, r ScanRequest) (*ScanResult, error) {
	tranID, err := scanTranID(&r)
	if err != nil {
		return nil, err
	}
	n := &wire.ScanNotification{
		ID:                  wire.NewID(),
		Time:                s.cfg.Now().UTC().Format(timeFormat),
		Partner:             &wire.Institution{ID: s.identity.ID, Name: s.identity.Name},
		TranID:              tranID,
		PartnerPaymentToken: r.PartnerPaymentToken,
	}
	if err := n.Validate(); err != nil {
		return nil, err
	}
	res := &ScanResult{Notification: n}
	sent := s.cfg.Now()
	res.Status, res.ContentType, res.Body, res.Err = s.notify(ctx, n)
	e := &ScanEntry{
		ID:                  n.ID,
		TranID:              n.TranID,
		PartnerPaymentToken: maskToken(n.PartnerPaymentToken),
		SentAt:              sent,
		Status:              res.Status,
	}
	if res.Err != nil {
		e.Error = res.Err.Error()
	}
	sh := s.scans.of(e.ID)
	sh.mu.Lock()
	sh.m[e.ID] = e
	sh.mu.Unlock()
	return res, nil
}

// scanTranID returns the tranId a scan request is for.
func scanTranID(r *ScanRequest) (string, error) {
	if err := r.Validate(); err != nil {
		return "", err
	}
	if r.QrCode == "" {
		return r.TranID, nil
	}
	id, err := qr.TranID(r.QrCode)
	if err != nil {
		return "", &wire.FieldError{Field: "qrCode", Reason: err.Error()}
	}
	if r.TranID != "" && r.TranID != id {
		return "", &wire.FieldError{Field: "tranId", Reason: "does not match the QR code's " + id}
	}
	return id, nil
}

// notify posts n to the switch and reads its answer.
func (s *Sim) notify(ctx context.Context, n *wire.ScanNotification) (status int, contentType string, body []byte, err error) {
	if s.cfg.SwitchURL == "" {
		return 0, "", nil, ErrNoSwitch
	}
	payload, err := json.Marshal(n)
	if err != nil {
		return 0, "", nil, fmt.Errorf("encoding scan notification: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ScanTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.SwitchURL+"/qr/v1/scans", bytes.NewReader(payload))
	if err != nil {
		return 0, "", nil, fmt.Errorf("building scan notification: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if s.cfg.ScanUsername != "" || s.cfg.ScanPassword != "" {
		req.SetBasicAuth(s.cfg.ScanUsername, s.cfg.ScanPassword)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, "", nil, fmt.Errorf("notifying scan to %s: %w", s.cfg.SwitchURL, err)
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, "", nil, fmt.Errorf("reading the switch's answer to a scan: %w", err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body, nil
}

// serveScan answers POST /sim/v1/scan with the switch's answer to the scan,
// status and body passed through. When no answer arrived it says so itself:
// 504 when the switch did not answer in time, 502 otherwise, with an
// ErrorDetail UPSTREAM_UNAVAILABLE (ROUTING_ERROR when no switch URL is
// configured) and the header X-Sim-Error naming the cause.
func (s *Sim) serveScan(w http.ResponseWriter, r *http.Request) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var sr ScanRequest
	if !decode(w, body, &sr) {
		return
	}
	res, err := s.Scan(r.Context(), sr)
	if err != nil {
		writeFormatError(w, err)
		return
	}
	if res.Err != nil {
		status, errorType, message := http.StatusBadGateway, wire.UpstreamUnavailable, "Switch unreachable"
		switch {
		case errors.Is(res.Err, ErrNoSwitch):
			errorType, message = wire.RoutingError, "No switch configured"
		case errors.Is(res.Err, context.DeadlineExceeded) || isTimeout(res.Err):
			status, message = http.StatusGatewayTimeout, "Switch did not answer in time"
		}
		d := wire.NewErrorDetail(errorType, message, res.Notification.ID, res.Notification.TranID)
		d.DetailMessage = wire.Detail(res.Err.Error())
		w.Header().Set("X-Sim-Error", "scan not delivered")
		writeError(w, status, d)
		return
	}
	if res.ContentType != "" {
		w.Header().Set("Content-Type", res.ContentType)
	}
	if len(res.Body) == 0 {
		w.WriteHeader(res.Status)
		return
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(res.Body)))
	w.WriteHeader(res.Status)
	w.Write(res.Body)
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// timeFormat is RFC 3339 with milliseconds, as the interface recommends.
const timeFormat = "2006-01-02T15:04:05.000Z07:00"
