package openpayments

import (
	"net/http"
	"time"

	"github.com/qrswitch/qrswitch/partners"
)

// SetVerifier replaces the rail's authorisation, for tests of the
// resource server before the GNAP server is wired.
func SetVerifier(r partners.Rail, f func(*http.Request, Access) (*Grant, error)) {
	r.(*Rail).verify = f
}

// UseGNAP puts the rail's own GNAP verification back.
func UseGNAP(r partners.Rail) { r.(*Rail).verify = r.(*Rail).gnapVerify }

// SetClock replaces the rail's clock.
func SetClock(r partners.Rail, now func() time.Time) { r.(*Rail).clock.Store(&now) }

// DecodeCreate exposes the create decoder to the fuzzer.
func DecodeCreate(r partners.Rail, b []byte) error {
	_, _, _, _, err := r.(*Rail).parseCreateIncoming(b, time.Now())
	return err
}

// SetGNAPPolicy sets the outgoing-payment policy of one client.
func SetGNAPPolicy(r partners.Rail, client, policy string) {
	o := &r.(*Rail).opts.GNAP
	o.Clients = append(o.Clients, GNAPClient{WalletAddress: client, OutgoingPayments: policy})
}

// ParseSignatureInput and ParseGrantRequest expose the parsers to the
// fuzzers.
func ParseSignatureInput(h string) error { _, err := parseSignatureInput(h); return err }

func ParseGrantRequest(b []byte) error { _, _, _, err := parseGrantRequest(b); return err }

// CheckDigest exposes the Content-Digest check to the fuzzer.
func CheckDigest(h string, body []byte) error { return checkDigest(h, body) }

// RefusePrivateClients makes the rail fetch clients' keys as in
// production without options.gnap.private_clients.
func RefusePrivateClients(r partners.Rail) {
	k := r.(*Rail).keys
	k.client.Transport = partners.PublicOnly(k.client.Transport)
}
