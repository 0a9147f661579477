// Package electrumsim owns the simulator of the electrum rail's partner
// side: a payment partner (a wallet) that speaks the Electrum QR interface
// to the switch over TLS. Developers run it in-process with the switch's
// development setup (or as "qrswitch partnersim"); the switch's integration
// tests, the crash tests and the load tool run against it. Its ledger shows
// everything the partner saw, so a test can prove that every payment's funds
// moved exactly once.
//
// # Partner endpoints
//
// POST /qr/v1/payments, /qr/v1/payments/confirmations and
// /qr/v1/payments/reversals check the switch's Basic auth (401 with
// WWW-Authenticate) and the body (400 FORMAT_ERROR naming the field). A
// payment's answer is chosen by the last two digits of
// amounts.requestAmount.amount (the amount modulo 100):
//
//	| last two digits | status | body | answer to pay |
//	|---|---|---|---|
//	| 00-49 | 201 | PaymentResponse | approve at once: funds reserved |
//	| 50 | 201 | PaymentResponse | approve; the payment's first 3 confirmation/reversal deliveries get 500 |
//	| 51 | 400 | ErrorDetail DECLINED_BY_PARTNER | decline, nothing reserved |
//	| 52 | 400 | ErrorDetail INSUFFICIENT_FUNDS | decline, nothing reserved |
//	| 53 | 400 | ErrorDetail DO_NOT_HONOR | decline, nothing reserved |
//	| 54 | 400 | ErrorDetail INVALID_ACCOUNT | decline, nothing reserved |
//	| 55 | 404 | ErrorDetail UNABLE_TO_LOCATE_RECORD | decline (not found), nothing reserved |
//	| 56 | 400 | none | decline without an ErrorDetail, nothing reserved |
//	| 57-59 | 201 | PaymentResponse | approve at once: funds reserved |
//	| 60 | 500 | ErrorDetail GENERAL_ERROR | partner error, nothing reserved |
//	| 61 | 501 | ErrorDetail FUNCTION_NOT_SUPPORTED | refuse, nothing reserved |
//	| 62 | 201 | PaymentResponse | approve at once: funds reserved |
//	| 63 | 503 | ErrorDetail UPSTREAM_UNAVAILABLE | partner unavailable, nothing reserved |
//	| 64 | 504 | none | gateway timeout without a body, nothing reserved |
//	| 65-69 | 201 | PaymentResponse | approve at once: funds reserved |
//	| 70 | 201 | PaymentResponse | approve, answer only after LateAfter (the switch times out first) |
//	| 71 | none | none | approve, then drop the connection without answering |
//	| 72 | 201 | PaymentResponse | approve, answer after SlowAfter (slow but in time) |
//	| 73 | 201 | malformed JSON | approve, answer 201 with a malformed JSON body |
//	| 74 | 201 | PaymentResponse | approve; every confirmation/reversal of the payment gets 503 (a final failed advice) |
//	| 75-99 | 201 | PaymentResponse | approve at once: funds reserved |
//
// A payment that is approved reserves the customer's funds; a confirmation
// captures them and a reversal releases them, each exactly once per advice
// id. The rules a real partner follows:
//
//   - A payment request whose id the sim already holds: 400 DUPLICATE_RECORD.
//   - An advice repeated with the same id gets the same answer as the first
//     time, never a duplicate error, and counts as another delivery.
//   - An advice for a requestId the sim never received: 404
//     UNABLE_TO_LOCATE_RECORD (for a reversal: nothing to reverse).
//   - A confirmation after a reversal, or a reversal after a confirmation:
//     400 TRANSACTION_NOT_SUPPORTED saying which. A confirmation of a
//     declined payment is refused the same way; a reversal of one is 202
//     with nothing to release.
//   - Advices of different payments may come in any order, and a reversal
//     may overtake a late answer to its payment.
//
// Every request is recorded, declined or unanswered ones included.
//
// # Controls
//
//	GET    /sim/v1/health   200
//	GET    /sim/v1/ledger   the Ledger as JSON
//	POST   /sim/v1/reset    empty the ledger (204)
//	GET    /sim/v1/faults   the faults in force
//	POST   /sim/v1/faults   {"operation":"pay|confirm|reverse|advice|all",
//	                         "fault":"none|500|503|504|hang|drop|refuse","count":N}
//	DELETE /sim/v1/faults   clear every fault (204)
//	POST   /sim/v1/scan     {"qrCode":"...","partnerPaymentToken":"...","tranId":"..."}
//	GET    /sim/v1/quirks   the quirks set (see Quirk)
//	POST   /sim/v1/quirks   {"quirk":"repeat-is-duplicate","on":true}
//
// A fault answers instead of the behaviour table, for the next count
// requests that pass the auth and format checks (0: until cleared); see
// FaultType. "refuse" closes the connection unanswered and records nothing;
// a real refused connection needs the listener stopped. The scan endpoint is
// the customer app: it reads the tranId from the QR code, sends a
// ScanNotification to the switch and answers with the switch's status and
// body. The controls are not authenticated.
//
// "Drop" (behaviour 71, faults drop and refuse) closes the connection
// unanswered; over HTTP/2, where a connection carries other requests, it
// resets the request's stream instead. Answers held for a while (late, slow,
// hang) end when the client goes away or Close is called. The hot path
// takes no global lock and logs nothing; the ledger grows until Reset.
package electrumsim
