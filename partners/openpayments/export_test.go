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

// SetClock replaces the rail's clock.
func SetClock(r partners.Rail, now func() time.Time) { r.(*Rail).clock.Store(&now) }

// DecodeCreate exposes the create decoder to the fuzzer.
func DecodeCreate(r partners.Rail, b []byte) error {
	_, _, _, _, err := r.(*Rail).parseCreateIncoming(b, time.Now())
	return err
}
