package wire

import (
	"bytes"
	"maps"
	"slices"
)

// The Clone methods return deep copies: nothing the copy reaches is shared
// with the original, so either may be changed freely. Stores use them to
// keep decoded records without handing out shared state. A test walks every
// message type by reflection and fails when a field is not copied deeply.

// Clone returns a copy of in.
func (in *Institution) Clone() *Institution { return cloneInstitution(in) }

// Clone returns a copy of a.
func (a *LedgerAmount) Clone() *LedgerAmount { return cloneLedger(a) }

func cloneInstitution(in *Institution) *Institution {
	if in == nil {
		return nil
	}
	out := *in
	return &out
}

func cloneLedger(a *LedgerAmount) *LedgerAmount {
	if a == nil {
		return nil
	}
	out := *a
	return &out
}

func cloneRaw(b []byte) []byte {
	if b == nil {
		return nil
	}
	return bytes.Clone(b)
}

// Clone returns a deep copy of o.
func (o *Originator) Clone() *Originator {
	if o == nil {
		return nil
	}
	out := *o
	return &out
}

// Clone returns a deep copy of a.
func (a *Amounts) Clone() *Amounts {
	if a == nil {
		return nil
	}
	return &Amounts{
		RequestAmount:     cloneLedger(a.RequestAmount),
		ApprovedAmount:    cloneLedger(a.ApprovedAmount),
		FeeAmount:         cloneLedger(a.FeeAmount),
		BalanceAmount:     cloneLedger(a.BalanceAmount),
		AdditionalAmounts: maps.Clone(a.AdditionalAmounts),
	}
}

func (t Transaction) clone() Transaction {
	t.Originator = t.Originator.Clone()
	t.Client = cloneInstitution(t.Client)
	t.SettlementEntity = cloneInstitution(t.SettlementEntity)
	t.Receiver = cloneInstitution(t.Receiver)
	t.ThirdPartyIdentifiers = slices.Clone(t.ThirdPartyIdentifiers)
	t.SlipData = cloneRaw(t.SlipData)
	return t
}

// Clone returns a deep copy of r.
func (r *PaymentRequest) Clone() *PaymentRequest {
	if r == nil {
		return nil
	}
	out := *r
	out.Transaction = r.Transaction.clone()
	out.Amounts = r.Amounts.Clone()
	out.Partner = cloneInstitution(r.Partner)
	return &out
}

// Clone returns a deep copy of r.
func (r *PaymentResponse) Clone() *PaymentResponse {
	if r == nil {
		return nil
	}
	out := *r
	out.Transaction = r.Transaction.clone()
	out.Amounts = r.Amounts.Clone()
	out.Partner = cloneInstitution(r.Partner)
	if r.Tenders != nil {
		out.Tenders = make([]Tender, len(r.Tenders))
		for i, t := range r.Tenders {
			t.Amount = cloneLedger(t.Amount)
			out.Tenders[i] = t
		}
	}
	return &out
}

// Clone returns a deep copy of r.
func (r *CreateQrCodeRequest) Clone() *CreateQrCodeRequest {
	if r == nil {
		return nil
	}
	out := *r
	out.Originator = r.Originator.Clone()
	out.Client = cloneInstitution(r.Client)
	out.ThirdPartyIdentifiers = slices.Clone(r.ThirdPartyIdentifiers)
	out.Amounts = r.Amounts.Clone()
	out.Customer = cloneRaw(r.Customer)
	if p := r.QrProperties; p != nil {
		q := *p
		q.Value = cloneLedger(p.Value)
		q.OverPaymentAllowed = cloneBool(p.OverPaymentAllowed)
		q.PartPaymentAllowed = cloneBool(p.PartPaymentAllowed)
		q.SingleUse = cloneBool(p.SingleUse)
		out.QrProperties = &q
	}
	return &out
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
}

func (a BasicAdvice) clone() BasicAdvice {
	a.ThirdPartyIdentifiers = slices.Clone(a.ThirdPartyIdentifiers)
	a.Amounts = a.Amounts.Clone()
	a.Partner = cloneInstitution(a.Partner)
	return a
}

// Clone returns a deep copy of c.
func (c *PaymentConfirmation) Clone() *PaymentConfirmation {
	if c == nil {
		return nil
	}
	return &PaymentConfirmation{BasicAdvice: c.BasicAdvice.clone()}
}

// Clone returns a deep copy of r.
func (r *PaymentReversal) Clone() *PaymentReversal {
	if r == nil {
		return nil
	}
	return &PaymentReversal{BasicAdvice: r.BasicAdvice.clone(), ReversalReason: r.ReversalReason}
}

// Clone returns a deep copy of d.
func (d *ErrorDetail) Clone() *ErrorDetail {
	if d == nil {
		return nil
	}
	out := *d
	out.DetailMessage = d.DetailMessage.clone()
	return &out
}
