package ipp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/outcome"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/ipp/protocol"
)

// Refund undoes a payment the rail reported paid: the switch, the payee's
// accountant, offers its reversal (section 3: a negative amount, with the
// original's xtime and amount in ref_xtime and ref_amount) to the payer's
// accountant. The reversal offer is made once and kept, so every attempt
// sends the same record. Its answer settles the advice: approved (620) is
// successful; pending (610) and the recoverable errors (7xx, 900, no
// answer) leave it unknown, so the store-and-forward queue repeats it;
// voided, a reset (not acceptable) and every other error are final and
// failed, with the code and message in the trace for support. A non-error
// code the seed leaves "to be specified" is repeated too.
func (r *Rail) Refund(ctx context.Context, a *partners.Advice) *partners.Answer {
	start := time.Now()
	ans := &partners.Answer{Outcome: outcome.Unknown}
	defer func() { ans.Latency = time.Since(start) }()
	if a.Paid == nil {
		ans.Outcome, ans.Code = outcome.Successful, "IPP nothing to refund"
		return ans
	}
	rev, n, err := r.reversalOf(ctx, a.Paid.Reference)
	if err != nil {
		ans.Err = fmt.Errorf("making the reversal offer of %s: %w: %w", a.Paid.Reference, err, outcome.ErrNotSent)
		var pe *protocol.ParamError
		if errors.As(err, &pe) || errors.Is(err, partners.ErrNotFound) {
			ans.Outcome = outcome.Failed
		}
		return ans
	}
	switch rev.State {
	case protocol.StateApproved:
		ans.Outcome, ans.Code = outcome.Successful, rev.Decision.String()
		return ans
	case protocol.StateVoided, protocol.StateError, protocol.StateReset:
		ans.Outcome, ans.Code, ans.Err = outcome.Failed, rev.Decision.String(), fmt.Errorf("the reversal offer ended %s: %s", rev.State, rev.Note)
		return ans
	}
	body := n.Encode()
	ans.Sent = []byte(body)
	rep, raw, err := r.send(ctx, rev.Counterpart, body)
	ans.Received = raw
	if err != nil {
		ans.Err = err
		var pe *protocol.ParamError
		if errors.As(err, &pe) {
			ans.Code = pe.Code.String() // the counterpart's manifest: recoverable
		}
		return ans
	}
	ans.Code = rep.Code.String()
	state, note := protocol.StateError, rep.Message
	var ev *protocol.Evidence
	switch {
	case rep.Code == protocol.CodeApproved:
		// Mutual approval: the payer's decision verified like a
		// notification of it.
		d, derr := rep.Decision()
		if derr == nil {
			if d.OriginalKey() != rev.Key || d.Code != protocol.CodeApproved {
				derr = errors.New("the decision's record is not the reversal offer's")
			} else {
				ev, derr = protocol.Verifier{Dir: r.dir}.Verify(ctx, d, rev.Counterpart)
			}
		}
		if derr != nil {
			ans.Err = fmt.Errorf("verifying the payer's approval: %w", derr)
			return ans // unknown: asked again, the payer answers again
		}
		state, rev.DecisionRecord, rev.DecisionScheme, rev.DecisionData, rev.Evidence = protocol.StateApproved, d.Canonical(), d.Scheme, d.VerData, ev
	case rep.Code == protocol.CodePending:
		state = protocol.StatePending
	case rep.Code == protocol.CodeReset:
		state, note = protocol.StateError, "the payer reset the reversal offer (to "+rep.Amount+"), which is not acceptable (806)"
	case rep.Code.Voided():
		state = protocol.StateVoided
	case rep.Code.Recoverable() || !rep.Code.Error():
		// A recoverable error, or a non-error code the seed leaves "to be
		// specified" (say 601): asked again, visible in the trace.
		ans.Err = fmt.Errorf("the payer's accountant answered %d %s: %s", rep.Code, rep.Status, rep.Message)
		return ans
	}
	if err := protocol.Transition(rev.State, state); err != nil {
		ans.Outcome, ans.Err = outcome.Failed, err
		return ans
	}
	rev.State, rev.Note = state, note
	if state != protocol.StatePending {
		rev.Decision, rev.Decided = rep.Code, r.now().UTC()
	}
	if err := commitRetry(ctx, func() error {
		cur, err := r.readPayment(ctx, rev.Key)
		if err != nil {
			return err
		}
		rev.Version, rev.Replies = cur.Version, cur.Replies
		return r.records.Commit(ctx, r.paymentRecord(rev))
	}); err != nil {
		ans.Err = fmt.Errorf("recording the payer's answer: %w", err)
		return ans
	}
	switch state {
	case protocol.StateApproved:
		ans.Outcome = outcome.Successful
	case protocol.StatePending:
		ans.Err = errors.New("the payer's accountant has not decided yet (610): asked again")
	default:
		ans.Outcome, ans.Err = outcome.Failed, fmt.Errorf("the payer's accountant answered %d %s: %s", rep.Code, rep.Status, note)
	}
	return ans
}

// reversalOf returns the switch's reversal offer of a payee payment,
// making and recording it (signed, with its own record for verification
// queries) the first time.
func (r *Rail) reversalOf(ctx context.Context, key string) (*payment, *protocol.Notification, error) {
	var rev *payment
	var n *protocol.Notification
	err := commitRetry(ctx, func() error {
		orig, err := r.readPayment(ctx, key)
		if err != nil {
			return err
		}
		if orig.Reversal != "" {
			if rev, err = r.readPayment(ctx, orig.Reversal); err != nil {
				return err
			}
			n, err = parseStored(rev.Offer)
			return err
		}
		if orig.Role != rolePayee || orig.State != protocol.StateApproved {
			return &protocol.ParamError{Code: protocol.CodeConflictStatus, Msg: fmt.Sprintf("payment %s is %s %s: nothing to reverse", key, orig.Role, orig.State)}
		}
		o, err := parseStored(orig.Offer)
		if err != nil {
			return err
		}
		n = &protocol.Notification{Version: protocol.Version, Code: protocol.CodeOffer, Status: protocol.CodeOffer.Status(), Relay: o.Relay,
			XTime: r.now().Unix(), Amount: "-" + o.Amount, Unit: o.Unit, From: o.From, To: o.To,
			Memo: "reversal", RefXTime: o.XTime, RefAmount: o.Amount, RefMemo: o.Memo}
		if err := r.signer.Sign(n); err != nil {
			return err
		}
		rev = &payment{Key: n.OriginalKey(), Role: roleReversal, State: protocol.StateOffer, Offer: n.Encode(), Counterpart: o.From,
			TranID: orig.TranID, Original: orig.Key, Retailer: orig.Retailer, Created: r.now().UTC()}
		orig.Reversal = rev.Key
		return r.records.Commit(ctx, r.paymentRecord(orig), r.paymentRecord(rev), r.ownRecord(n, orig.Retailer))
	})
	if err != nil {
		return nil, nil, err
	}
	return rev, n, nil
}

// send posts a notification to brand's accountants (the first that
// answers) and reads the reply. Errors are the brand's manifest
// (*protocol.ParamError, 7xx) or no reply at all.
func (r *Rail) send(ctx context.Context, brand, body string) (*protocol.Reply, []byte, error) {
	m, err := r.dir.Manifest(ctx, brand)
	if err != nil {
		return nil, nil, err
	}
	var lastErr error
	for _, acct := range m.Accountants {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, acct, strings.NewReader(body))
		if err != nil {
			lastErr = err
			continue
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		resp, err := r.client.Do(req)
		if err != nil {
			lastErr = fmt.Errorf("notifying %s: %w", acct, err)
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
		resp.Body.Close()
		if err != nil {
			lastErr = fmt.Errorf("reading %s's reply: %w", acct, err)
			continue
		}
		rep, err := protocol.ParseReply(raw)
		if err != nil {
			lastErr = fmt.Errorf("%s answered HTTP %d: %w", acct, resp.StatusCode, err)
			continue
		}
		return rep, raw, nil
	}
	return nil, nil, lastErr
}
