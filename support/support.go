// Package support is the surface for support staff: find any transaction by
// any of its identifiers and read its whole story — the payment record, its
// QR code, every advice and every message of its trace, secrets masked.
// Support users authenticate with their own Basic-auth credentials and have
// a role: viewer (read) or operator (read and act on queues).
package support

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/qrswitch/qrswitch/httpapi"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	"github.com/qrswitch/qrswitch/wire"
)

// Mount adds the support API to r.
func Mount(r gin.IRouter, e *qrswitch.Engine, auth *httpapi.Authenticator) {
	g := r.Group("/support/v1", auth.Require(httpapi.KindSupport), httpapi.RequireRole(httpapi.RoleViewer, httpapi.RoleOperator))
	g.GET("/transactions/:key", func(c *gin.Context) {
		key := c.Param("key")
		stories, err := e.Stories(c.Request.Context(), key)
		if err != nil {
			d := wire.NewErrorDetail(wire.UpstreamUnavailable, "Switch storage unavailable", "", "")
			httpapi.Fail(c, http.StatusServiceUnavailable, d)
			return
		}
		if len(stories) == 0 {
			httpapi.Fail(c, http.StatusNotFound, wire.NewErrorDetail(wire.UnableToLocateRecord, "No transaction has this id", "", ""))
			return
		}
		httpapi.JSON(c, http.StatusOK, gin.H{"results": stories})
	})
}
