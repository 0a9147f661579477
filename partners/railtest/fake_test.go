package railtest

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/qrswitch/qrswitch/partners"
)

// TestPullFakeConformance runs the pull rails' suite on Fake as a pull
// rail: the test rail of the seam passes what every pull rail must.
func TestPullFakeConformance(t *testing.T) {
	RunPull(t, Pull{
		New: func(t *testing.T, host partners.Host, _ partners.Records) partners.Rail {
			f := &Fake{Pull: true}
			r, err := f.New(partners.Config{PartnerID: "fake-pull", Name: "Fake", Host: host})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
		PayOffer: func(t *testing.T, r partners.Rail, o *partners.OfferRequest, _ *partners.Offer, _ bool) bool {
			mux := http.NewServeMux()
			for _, rt := range r.(partners.Surface).Routes() {
				mux.Handle(rt.Method+" "+rt.Path, rt.Handler)
			}
			req := httptest.NewRequest(http.MethodPost, "/fake/fake-pull/pay/"+o.TranID+"?amount="+strconv.FormatInt(o.Amount.Amount, 10)+"&currency="+o.Amount.Currency, nil)
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, req)
			return w.Code == http.StatusNoContent
		},
		Currency: "710",
		Amount:   12345,
	})
}
