package qrswitch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
)

// Scanned handles a partner's scan notification (notifyScan) from the
// authenticated partner partnerID (partners.Host: a push rail's surface
// calls it). It returns nil (202) once the scan is
// linked to the payment request waiting on its QR code. A scan that beat its
// payment request is held up to early_scan_grace for the request to arrive.
// Every other scan is declined with an ErrorDetail, so the partner can tell
// its customer at once.
func (e *Engine) Scanned(ctx context.Context, partnerID string, s *wire.ScanNotification, raw []byte) *wire.Failure {
	if err := s.Validate(); err != nil {
		return wire.FormatFailure(err, s.ID)
	}
	partner, ok := e.partners[partnerID]
	if !ok {
		return fail(400, wire.PartnerUnknown, "Partner not configured", s.ID, s.TranID)
	}
	if s.Partner.ID != partnerID {
		return wire.FormatFailure(&wire.FieldError{Field: "partner.id", Reason: "must be the authenticated partner " + partnerID}, s.ID)
	}
	peer := "partner:" + partnerID
	woken, unwatch := e.watch(scanKey(s.TranID))
	defer unwatch()
	for range maxRetries {
		now := e.now()
		scan := &Scan{ID: s.ID, PartnerID: partnerID, PartnerName: partner.Name, PaymentToken: s.PartnerPaymentToken, ReceivedAt: now}
		code, err := e.store.QR(ctx, s.TranID)
		switch {
		case errors.Is(err, ErrNotFound):
			return fail(400, wire.InvalidTranID, "Unknown QR code", s.ID, s.TranID)
		case err != nil:
			return storeFailure(err, s.ID, s.TranID)
		case code.Expired(now):
			return fail(400, wire.InvalidTranID, "QR code expired", s.ID, s.TranID)
		}
		if code.PaymentKey != "" {
			p, err := e.store.Payment(ctx, code.PaymentKey)
			if err != nil {
				return storeFailure(err, s.ID, s.TranID)
			}
			if p.State == outcome.AwaitingScan {
				if p, err = e.link(p, scan, partner, now); err != nil {
					return storeFailure(err, s.ID, s.TranID)
				}
				if p.Checkout != nil {
					// No till holds a checkout's request open: this process
					// forwards it, and owns it until the partner answers.
					p.Owner = e.node
				}
				trace := []TraceEntry{inbound(now, peer, "notifyScan", s.ID, raw), answered(now, peer, "notifyScan", s.ID, 202, nil, 0)}
				switch err := e.store.Commit(ctx, &Change{Payment: p, Trace: trace}); {
				case err == nil:
					e.wake(ctx, p.Key())
					e.obs.ScanLinked(false, now.Sub(p.CreatedAt))
					if p.Checkout != nil {
						e.sends.Go(func() { e.forward(context.WithoutCancel(e.base), p) })
					}
					return nil
				case errors.Is(err, ErrConflict):
					continue
				default:
					return storeFailure(err, s.ID, s.TranID)
				}
			}
			if p.Scan != nil && p.Scan.PartnerID == partnerID && p.Scan.ID == s.ID {
				return nil // the same scan again: same answer
			}
			if code.SingleUse || !p.State.Final() {
				f := lateScan(p, partnerID, s)
				trace := []TraceEntry{inbound(now, peer, "notifyScan", s.ID, raw), answered(now, peer, "notifyScan", s.ID, f.Status, f.Detail, 0)}
				if err := e.store.Commit(ctx, &Change{TraceKey: p.Key(), Trace: trace}); err != nil {
					e.logger(ctx).Warn().Err(err).Str("payment", p.Key()).Msg("tracing a declined scan")
				}
				return f
			}
			// A reusable code whose last payment is over: a new scan waits
			// for the next payment request like any early scan.
		}
		if e.opts.EarlyScanGrace <= 0 {
			// Early scans are not held (early_scan_grace 0): declined
			// at once, as the interface does.
			return fail(400, wire.UnableToLocateRecord, "No payment request for this QR code", s.ID, s.TranID)
		}
		if hs := code.HeldScan; hs != nil && now.Before(hs.Until) {
			if hs.PartnerID != partnerID || hs.ID != s.ID {
				return fail(400, wire.InvalidTranID, "QR code already scanned", s.ID, s.TranID)
			}
			scan = hs // the same early scan again: wait with the first
		} else {
			scan.Until = now.Add(e.opts.EarlyScanGrace)
			code.HeldScan = scan
			trace := []TraceEntry{inbound(now, peer, "notifyScan", s.ID, raw),
				event(now, "scanHeld", fmt.Sprintf("no payment request yet: scan held up to %s", e.opts.EarlyScanGrace))}
			switch err := e.store.Commit(ctx, &Change{QR: code, TraceKey: qrTraceKey(s.TranID), Trace: trace}); {
			case errors.Is(err, ErrConflict):
				continue
			case err != nil:
				return storeFailure(err, s.ID, s.TranID)
			}
		}
		return e.awaitLink(context.WithoutCancel(ctx), partner, scan, woken, s)
	}
	return storeFailure(errContention, s.ID, s.TranID)
}

// lateScan is the decline of a scan for a QR code whose payment is not
// waiting for one.
func lateScan(p *Payment, partnerID string, s *wire.ScanNotification) *wire.Failure {
	switch {
	case p.Scan != nil && p.Scan.PartnerID != partnerID:
		return fail(400, wire.InvalidTranID, "QR code scanned by another partner", s.ID, s.TranID)
	case p.Scan != nil:
		return fail(400, wire.InvalidTranID, "QR code already scanned", s.ID, s.TranID)
	default:
		f := fail(400, wire.UnableToLocateRecord, "Payment request no longer waiting", s.ID, s.TranID)
		f.Detail.DetailMessage = wire.Detail("the payment request ended (" + string(p.State) + ") before this scan arrived")
		return f
	}
}

// awaitLink waits for a payment request to take a held early scan. The scan
// is linked (202) if a request took it before its grace ended; otherwise the
// hold is withdrawn and the scan declined.
func (e *Engine) awaitLink(ctx context.Context, partner *partners.Partner, scan *Scan, woken <-chan struct{}, s *wire.ScanNotification) *wire.Failure {
	timer := time.NewTimer(scan.Until.Sub(e.now()))
	defer timer.Stop()
	var recheck <-chan time.Time
	if e.opts.Recheck > 0 {
		t := time.NewTicker(e.opts.Recheck)
		defer t.Stop()
		recheck = t.C
	}
	expired := false
	peer := "partner:" + partner.ID
	for conflicts := 0; conflicts < maxRetries; {
		if !expired {
			select {
			case <-woken:
			case <-recheck:
			case <-timer.C:
				expired = true
			}
		}
		code, err := e.store.QR(ctx, s.TranID)
		if err != nil {
			if expired {
				return storeFailure(err, s.ID, s.TranID)
			}
			continue
		}
		if hs := code.HeldScan; hs == nil || hs.ID != scan.ID || hs.PartnerID != scan.PartnerID {
			// A payment request took it — or it was withdrawn. Which one
			// the payment says.
			if code.PaymentKey != "" {
				if p, err := e.store.Payment(ctx, code.PaymentKey); err == nil && p.Scan != nil && p.Scan.ID == scan.ID && p.Scan.PartnerID == scan.PartnerID {
					return nil // the link's commit traced this 202 (admit)
				}
			}
			return fail(400, wire.UnableToLocateRecord, "No payment request for this QR code", s.ID, s.TranID)
		}
		if !expired {
			continue
		}
		now := e.now()
		code.HeldScan = nil
		f := fail(400, wire.UnableToLocateRecord, "No payment request for this QR code", s.ID, s.TranID)
		f.Detail.DetailMessage = wire.Detail(fmt.Sprintf("no payment request arrived within %s of the scan", e.opts.EarlyScanGrace))
		trace := []TraceEntry{answered(now, peer, "notifyScan", s.ID, f.Status, f.Detail, now.Sub(scan.ReceivedAt))}
		switch err := e.store.Commit(ctx, &Change{QR: code, TraceKey: qrTraceKey(s.TranID), Trace: trace}); {
		case err == nil:
			return f
		case errors.Is(err, ErrConflict):
			conflicts++ // a payment request took it at the last moment: look again
		default:
			return storeFailure(err, s.ID, s.TranID)
		}
	}
	return storeFailure(errContention, s.ID, s.TranID)
}
