package openpayments

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/qrswitch/qrswitch/partners"
)

// SupportKinds are the records support staff see: incoming payments (with
// the QR code they were made for and the packets credited, never a shared
// secret), quotes, outgoing payments, grants and access tokens (never a
// token's value or hash). Credits, one per packet, are summed on their
// incoming payment instead.
func (r *Rail) SupportKinds() []string {
	return []string{kindIncoming, kindOutgoing, kindQuote, kindGrant, kindToken}
}

// SupportView renders one record for support.
func (r *Rail) SupportView(ctx context.Context, rec *partners.Record) (any, error) {
	switch rec.Kind {
	case kindIncoming:
		var ip incoming
		if err := json.Unmarshal(rec.Data, &ip); err != nil {
			return nil, err
		}
		v, err := r.view(&ip, false)
		if err != nil {
			return nil, err
		}
		return map[string]any{"incomingPayment": v, "tranId": ip.TranID, "packets": ip.Packets, "client": ip.Client,
			"paid": ip.Paid, "ended": ip.Ended}, nil
	case kindOutgoing:
		var op outgoing
		if err := json.Unmarshal(rec.Data, &op); err != nil {
			return nil, err
		}
		return r.outgoingView(ctx, &op), nil
	case kindQuote:
		var q quote
		if err := json.Unmarshal(rec.Data, &q); err != nil {
			return nil, err
		}
		return r.quoteView(ctx, &q), nil
	case kindGrant:
		var g grant
		if err := json.Unmarshal(rec.Data, &g); err != nil {
			return nil, err
		}
		return map[string]any{"client": g.Client, "at": g.At, "revoked": g.Revoked, "token": g.Token}, nil
	case kindToken:
		var t token
		if err := json.Unmarshal(rec.Data, &t); err != nil {
			return nil, err
		}
		return map[string]any{"grant": t.Grant, "client": t.Client, "access": t.Access, "issuedAt": t.IssuedAt,
			"expiresAt": t.ExpiresAt, "expired": !r.now().Before(t.ExpiresAt), "revoked": t.Revoked}, nil
	}
	return nil, fmt.Errorf("kind %s is not shown", rec.Kind)
}

// Interface guard.
var _ partners.Inspector = (*Rail)(nil)
