// Package scanapi is the partner-facing surface of the switch: POST
// /qr/v1/scans, where a partner notifies the switch that its customer
// scanned a QR code. The partner authenticates with its own Basic-auth
// credentials and may only scan as itself.
package scanapi

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Linker links scans to payment requests; *qrswitch.Engine is one.
type Linker interface {
	Scan(ctx context.Context, partnerID string, s *wire.ScanNotification, raw []byte) *qrswitch.Failure
}

// Mount adds POST /qr/v1/scans to r. Only partner principals of auth are
// admitted.
func Mount(r gin.IRouter, l Linker, auth *httpapi.Authenticator) {
	r.POST("/qr/v1/scans", auth.Require(httpapi.KindPartner), func(c *gin.Context) {
		var s wire.ScanNotification
		raw, ok := httpapi.Decode(c, &s)
		if !ok {
			return
		}
		httpapi.SetTranID(c, s.TranID)
		p, _ := httpapi.PrincipalOf(c)
		if f := l.Scan(c.Request.Context(), p.ID, &s, raw); f != nil {
			httpapi.FailCause(c, f.Status, f.Detail, f.Cause)
			return
		}
		c.Status(http.StatusAccepted)
	})
}
