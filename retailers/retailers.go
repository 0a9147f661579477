// Package retailers is the retailer-facing surface of the switch: the
// Electrum QR interface's retailer operations over HTTPS with Basic auth
// (createQrCode, pay, confirmPayment, reversePayment) and the QR image
// endpoint. It authenticates, decodes and renders; the engine decides.
package retailers

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// Mount adds the retailer operations to r. Only retailer principals of auth
// are admitted.
func Mount(r gin.IRouter, e *qrswitch.Engine, auth *httpapi.Authenticator) {
	h := &handlers{engine: e}
	g := r.Group("/qr/v1", auth.Require(httpapi.KindRetailer))
	g.POST("/qrCodes", h.createQrCode)
	g.GET("/qrCodes/:tranId/image.png", h.image)
	g.POST("/payments", h.pay)
	g.POST("/payments/confirmations", h.confirm)
	g.POST("/payments/reversals", h.reverse)
}

type handlers struct{ engine *qrswitch.Engine }

func retailer(c *gin.Context) qrswitch.Retailer {
	p, _ := httpapi.PrincipalOf(c)
	return qrswitch.Retailer{ID: p.ID, InstitutionID: p.InstitutionID}
}

func (h *handlers) createQrCode(c *gin.Context) {
	var req wire.CreateQrCodeRequest
	raw, ok := httpapi.Decode(c, &req)
	if !ok {
		return
	}
	resp, f := h.engine.CreateQR(c.Request.Context(), retailer(c), &req, raw)
	if f != nil {
		httpapi.FailCause(c, f.Status, f.Detail, f.Cause)
		return
	}
	httpapi.SetTranID(c, resp.TranID)
	httpapi.JSON(c, http.StatusCreated, resp)
}

func (h *handlers) image(c *gin.Context) {
	tranID := c.Param("tranId")
	httpapi.SetTranID(c, tranID)
	size := qrswitch.DefaultImageSize
	if s := c.Query("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			d := wire.NewErrorDetail(wire.FormatError, "Invalid field size", "", tranID)
			d.DetailMessage = wire.Detail("size must be a whole number of pixels")
			httpapi.Fail(c, http.StatusBadRequest, d)
			return
		}
		size = n
	}
	img, f := h.engine.QRImage(c.Request.Context(), retailer(c), tranID, size)
	if f != nil {
		httpapi.FailCause(c, f.Status, f.Detail, f.Cause)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Data(http.StatusOK, "image/png", img)
}

// pay decodes and admits the payment request apart from the goroutine
// that then waits for its answer (httpapi.Apart): thousands of requests
// are held at once, each by its own goroutine.
func (h *handlers) pay(c *gin.Context) {
	var (
		held    *qrswitch.Held
		f       *wire.Failure
		decoded bool
	)
	httpapi.Apart(func() {
		var req wire.PaymentRequest
		raw, ok := httpapi.Decode(c, &req)
		if !ok {
			return
		}
		decoded = true
		httpapi.SetTranID(c, req.TranID)
		held, f = h.engine.Admit(c.Request.Context(), retailer(c), &req, raw)
	})
	if !decoded {
		return
	}
	var resp *wire.PaymentResponse
	if f == nil {
		resp, f = held.Await(c.Request.Context())
	}
	if f != nil {
		httpapi.FailCause(c, f.Status, f.Detail, f.Cause)
		return
	}
	httpapi.JSON(c, http.StatusCreated, resp)
}

func (h *handlers) confirm(c *gin.Context) {
	var adv wire.PaymentConfirmation
	raw, ok := httpapi.Decode(c, &adv)
	if !ok {
		return
	}
	httpapi.SetTranID(c, adv.TranID)
	a := h.engine.Confirm(c.Request.Context(), retailer(c), &adv, raw)
	adviceAnswer(c, a)
}

func (h *handlers) reverse(c *gin.Context) {
	var adv wire.PaymentReversal
	raw, ok := httpapi.Decode(c, &adv)
	if !ok {
		return
	}
	httpapi.SetTranID(c, adv.TranID)
	a := h.engine.Reverse(c.Request.Context(), retailer(c), &adv, raw)
	adviceAnswer(c, a)
}

// adviceAnswer renders the engine's answer to an advice, logging the cause
// of a failure.
func adviceAnswer(c *gin.Context, a qrswitch.AdviceAnswer) {
	if a.Cause != nil {
		httpapi.Logger(c).Error().Err(a.Cause).Int("status", a.Status).Msg("request failed")
	}
	httpapi.Raw(c, a.Status, a.Body)
}
