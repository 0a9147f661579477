package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/httpapi"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/qr"
	"github.com/qrswitch/qrswitch/retailers/checkout"
	qrswitch "github.com/qrswitch/qrswitch/switch"
)

// buildCheckout builds the web shops' surface when a retailer has a
// checkout: its shops, their currencies (ISO 4217, or a token rail's), and
// the listener. It returns nil when no retailer has one.
func (s *Server) buildCheckout(auth *httpapi.Authenticator) (*checkout.Surface, error) {
	rails := map[string]partners.Currency{}
	for _, r := range s.rails {
		if c, ok := r.partner.Rail.(partners.Currencies); ok {
			for _, cur := range c.Currencies() {
				rails[cur.Code] = cur
			}
		}
	}
	var shops []*checkout.Shop
	for i, rc := range s.cfg.Retailers {
		c := rc.Checkout
		if !c.Enabled() {
			continue
		}
		base := fmt.Sprintf("retailers[%d].checkout", i)
		exp, ok := qr.CurrencyExponent(c.Currency)
		if !ok {
			cur, isRail := rails[c.Currency]
			if !isRail {
				return nil, fmt.Errorf("%s.currency: %q is neither an ISO 4217 numeric code nor a currency of a configured rail", base, c.Currency)
			}
			exp = cur.Exponent
		}
		maxAmount, ok := new(big.Rat).SetString(c.MaxAmount)
		if !ok {
			return nil, fmt.Errorf("%s.max_amount: %q", base, c.MaxAmount)
		}
		maxMinor := new(big.Int).Quo(new(big.Int).Mul(maxAmount.Num(), new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(exp)), nil)), maxAmount.Denom())
		shop := &checkout.Shop{
			Retailer: qrswitch.Retailer{ID: rc.ID, InstitutionID: rc.InstitutionID}, Username: rc.Username,
			RequireCredentials: c.Credentials == config.CheckoutCredentialsRequired,
			Currency:           c.Currency, Exponent: exp, MaxAmount: maxMinor, Expiry: c.Expiry.D(),
			PostbackSecret: []byte(c.PostbackSecret),
			Merchant: wire.Merchant{MerchantType: c.Merchant.MCC, MerchantID: merchantID(rc.ID),
				MerchantName: wire.MerchantName{Name: c.Merchant.Name, City: c.Merchant.City, Country: c.Merchant.Country}},
		}
		for _, a := range c.Allow {
			p, err := prefix(a)
			if err != nil {
				return nil, fmt.Errorf("%s.allow: %w", base, err)
			}
			shop.Allow = append(shop.Allow, p)
		}
		shops = append(shops, shop)
	}
	if len(shops) == 0 {
		return nil, nil
	}
	var proxies []netip.Prefix
	for _, p := range s.cfg.TrustedProxies {
		pp, err := prefix(p)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %w", err)
		}
		proxies = append(proxies, pp)
	}
	return checkout.New(checkout.Options{
		Shops: shops, Auth: auth, TrustedProxies: proxies,
		Client: &http.Client{Timeout: 30 * time.Second, Transport: newTransport(nil),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Logger: s.log.With().Str("surface", "checkout").Logger(),
	}), nil
}

// prefix reads an IP address or a CIDR.
func prefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// setupCheckoutListener opens the web shops' listener.
func (s *Server) setupCheckoutListener() error {
	var err error
	if s.checkoutLn, err = net.Listen("tcp", s.cfg.Checkout.Listen); err != nil {
		return fmt.Errorf("listening on %s (checkout): %w", s.cfg.Checkout.Listen, err)
	}
	s.checkoutSrv = &http.Server{
		Handler:           s.checkout.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdLogger(s.log, "checkout"),
	}
	if s.cfg.Checkout.TLS {
		s.checkoutSrv.TLSConfig = s.tls.Config()
	}
	return nil
}

// CheckoutAddr is the address of the web shops' listener, or "".
func (s *Server) CheckoutAddr() string {
	if s.checkoutLn == nil {
		return ""
	}
	return s.checkoutLn.Addr().String()
}

// merchantID is a shop's merchant id in the interface's messages (exactly
// 15 characters): WEB and 12 hex digits of the retailer id's SHA-256.
func merchantID(retailerID string) string {
	sum := sha256.Sum256([]byte(retailerID))
	return "WEB" + strings.ToUpper(hex.EncodeToString(sum[:6]))
}
