package storetest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/outcome"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// The records below are shaped like the engine's: full wire messages with
// originator, amounts and identifiers, so that round trips exercise every
// field and benchmark figures reflect real record sizes (about 2 KB of JSON
// per payment). Times are UTC without a monotonic reading, so a record read
// back is reflect.DeepEqual to the one written.

// t0 is the suite's "now".
var t0 = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

const (
	retailerA = "shop-1"
	retailerB = "shop-2"
	partnerA  = "wallet-a"
	partnerB  = "wallet-b"
)

func stamp(t time.Time) string { return t.Format("2006-01-02T15:04:05.000Z07:00") }

func originator(retailer string) *wire.Originator {
	return &wire.Originator{
		Institution: wire.Institution{ID: "1234", Name: "Retailer " + retailer},
		TerminalID:  "T0001",
		Merchant: wire.Merchant{
			MerchantType: "5411",
			MerchantID:   "M-000123",
			MerchantName: wire.MerchantName{Name: "Corner Grocer", City: "Cape Town", Region: "WC", Country: "ZA"},
		},
		OperatorID: "op-17",
		ChannelID:  "pos",
	}
}

// newQR returns a QR code issued to retailer for the createQrCode request
// requestID.
func newQR(retailer, requestID, tranID string, at time.Time) *qrswitch.QRCode {
	single := true
	return &qrswitch.QRCode{
		TranID:     tranID,
		RetailerID: retailer,
		RequestID:  requestID,
		Payload:    "00020101021226490014za.co.electrum0127" + tranID + "5204541153037105802ZA5913Corner Grocer6009Cape Town6304ABCD",
		Scheme:     wire.SchemeEMVCo,
		SingleUse:  true,
		CreatedAt:  at,
		ExpiresAt:  at.Add(5 * time.Minute),
		Request: &wire.CreateQrCodeRequest{
			ID:                    requestID,
			Time:                  stamp(at),
			Originator:            originator(retailer),
			Client:                &wire.Institution{ID: "9999", Name: "Client"},
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{{InstitutionID: "1234", TransactionIdentifier: "qr-" + requestID}},
			Amounts:               &wire.Amounts{RequestAmount: &wire.LedgerAmount{Amount: 79995, Currency: "710"}},
			QrProperties:          &wire.QrProperties{SingleUse: &single, Scheme: wire.SchemeEMVCo, ExpiryDate: stamp(at.Add(5 * time.Minute))},
		},
	}
}

// newPayment returns a payment request of retailer, AWAITING_SCAN and held
// by node-a for a minute.
func newPayment(retailer, requestID, tranID string, at time.Time) *qrswitch.Payment {
	return &qrswitch.Payment{
		RetailerID: retailer,
		RequestID:  requestID,
		TranID:     tranID,
		State:      outcome.AwaitingScan,
		Request: &wire.PaymentRequest{
			Transaction: wire.Transaction{
				ID:                    requestID,
				Time:                  stamp(at),
				Originator:            originator(retailer),
				Client:                &wire.Institution{ID: "9999", Name: "Client"},
				SettlementEntity:      &wire.Institution{ID: "5555", Name: "Acquiring Bank"},
				Receiver:              &wire.Institution{ID: "7777", Name: "Receiver"},
				ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{{InstitutionID: "1234", TransactionIdentifier: "pos-" + requestID}},
				SlipData:              json.RawMessage(`{"messageLines":["Thank you for shopping","Corner Grocer"]}`),
				BasketRef:             "basket-" + requestID,
				TranType:              "GOODS_AND_SERVICES",
				SrcAccType:            "DEFAULT",
				DestAccType:           "DEFAULT",
				Stan:                  "000123",
				Rrn:                   "rrn-" + requestID,
			},
			Amounts: &wire.Amounts{
				RequestAmount:     &wire.LedgerAmount{Amount: 79995, Currency: "710"},
				AdditionalAmounts: map[string]wire.LedgerAmount{"CASHBACK_AMOUNT": {Amount: 0, Currency: "710"}},
			},
			TranID: tranID,
		},
		PayOutcome: outcome.Unknown,
		Owner:      "node-a",
		HoldUntil:  at.Add(time.Minute),
		CreatedAt:  at,
		UpdatedAt:  at,
	}
}

// scanned links p to partner as the engine does when the scan arrives.
func scanned(p *qrswitch.Payment, partner string, at time.Time) {
	p.State = outcome.Forwarded
	p.Scan = &qrswitch.Scan{
		ID:           "scan-" + p.RequestID,
		PartnerID:    partner,
		PartnerName:  "Wallet " + partner,
		PaymentToken: "tok-0123456789abcdef",
		ReceivedAt:   at,
	}
	p.UpdatedAt = at
}

// approved records the partner's approval of p.
func approved(p *qrswitch.Payment, at time.Time) {
	p.State = outcome.Approved
	p.PayOutcome = outcome.Successful
	p.Status = 200
	p.Response = &wire.PaymentResponse{
		Transaction: wire.Transaction{
			ID:                    p.RequestID,
			Time:                  stamp(at),
			Originator:            p.Request.Originator,
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{{InstitutionID: p.PartnerID(), TransactionIdentifier: "w-" + p.RequestID}},
			Rrn:                   p.Request.Rrn,
		},
		Partner: &wire.Institution{ID: p.PartnerID(), Name: "Wallet"},
		Amounts: &wire.Amounts{ApprovedAmount: &wire.LedgerAmount{Amount: 79995, Currency: "710"}},
		TranID:  p.TranID,
		Tenders: []wire.Tender{{AccountType: "DEFAULT", Amount: &wire.LedgerAmount{Amount: 79995, Currency: "710"}, CardNumber: "541333******0019", TenderType: "CREDIT_CARD"}},
	}
	p.UpdatedAt = at
}

// timedOut records a payment leg without a final answer: the switch is
// reversing it.
func timedOut(p *qrswitch.Payment, at time.Time) {
	p.State = outcome.Reversing
	p.PayOutcome = outcome.Unknown
	p.Status = 504
	p.UpdatedAt = at
}

// declined records the partner's decline of p.
func declined(p *qrswitch.Payment, at time.Time) {
	p.State = outcome.Declined
	p.PayOutcome = outcome.Failed
	p.Status = 400
	p.Response = nil
	p.UpdatedAt = at
}

// newControl returns a partner control set by an operator at at.
func newControl(partner string, paused bool, at time.Time) *qrswitch.QueueControl {
	return &qrswitch.QueueControl{Destination: partner, Paused: paused, By: "alice", At: at, Reason: "partner maintenance window"}
}

// newAdvice returns a pending confirmation of the payment with key
// paymentKey, from sender, to partner, due at nextAt.
func newAdvice(sender, id, paymentKey, partner string, nextAt time.Time) *qrswitch.Advice {
	return &qrswitch.Advice{
		Sender:      sender,
		ID:          id,
		Kind:        qrswitch.Confirmation,
		PaymentKey:  paymentKey,
		TranID:      "tran-" + id,
		Destination: partner,
		Confirmation: &wire.PaymentConfirmation{BasicAdvice: wire.BasicAdvice{
			ID:                    id,
			RequestID:             paymentKey,
			Time:                  stamp(nextAt),
			ThirdPartyIdentifiers: []wire.ThirdPartyIdentifier{{InstitutionID: "1234", TransactionIdentifier: "pos-" + id}},
			Stan:                  "000123",
			Rrn:                   "rrn-" + id,
			Amounts:               &wire.Amounts{ApprovedAmount: &wire.LedgerAmount{Amount: 79995, Currency: "710"}},
			TranID:                "tran-" + id,
			Partner:               &wire.Institution{ID: partner, Name: "Wallet"},
		}},
		State:        qrswitch.AdvicePending,
		Outcome:      outcome.Unknown,
		NextAt:       nextAt,
		AnswerStatus: 202,
		AnswerBody:   []byte(`{"id":"` + id + `"}`),
		CreatedAt:    nextAt,
		UpdatedAt:    nextAt,
	}
}

// entry returns a trace entry of an inbound request with a masked body.
func entry(op string, n int, at time.Time) qrswitch.TraceEntry {
	return qrswitch.TraceEntry{
		At:        at,
		Direction: qrswitch.Inbound,
		Peer:      "retailer:" + retailerA,
		Operation: op,
		MessageID: fmt.Sprintf("msg-%d", n),
		Status:    202,
		Outcome:   "successful",
		LatencyMS: 12.5,
		Body:      `{"id":"msg","partnerPaymentToken":"****cdef","amounts":{"requestAmount":{"amount":79995,"currency":"710"}}}`,
		Note:      fmt.Sprintf("entry %d", n),
	}
}
