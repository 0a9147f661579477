package tlsconfig

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"
)

// ClientOptions configures NewClient, for calling one partner.
type ClientOptions struct {
	// CAFile is a PEM bundle of the CAs trusted for the partner's
	// certificate. When set, only these are trusted and the system roots are
	// not: a partner link is a bilateral agreement, and adding the hundred-odd
	// public roots would let any of them vouch for the partner's name. Empty
	// trusts the system roots, for partners with a public certificate.
	CAFile string
	// CertFile and KeyFile are the PEM client certificate chain and key the
	// switch presents when the partner asks for mutual TLS. Both or neither.
	// They are read once; a new client certificate needs a new config.
	CertFile, KeyFile string
	// ServerName, if set, is the name verified in the partner's certificate
	// (and sent as SNI) instead of the host of the URL, for partners reached
	// through an IP address or a tunnel. Empty lets net/http use the URL host.
	ServerName string
}

// NewClient returns a hardened client config for calling a partner.
func NewClient(o ClientOptions) (*tls.Config, error) {
	c := &tls.Config{ServerName: o.ServerName}
	if o.CAFile != "" {
		pool, err := readPool(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: loading partner CAs: %w", err)
		}
		c.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("tlsconfig: client certificate file and key file go together")
	}
	if o.CertFile != "" {
		cert, err := loadKeyPair(o.CertFile, o.KeyFile, time.Now())
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: loading client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{*cert}
	}
	Harden(c)
	return c, nil
}

// ClientFromPEM returns a hardened client config that trusts only the CAs in
// caPEM, for tests and for CAs that come from somewhere other than a file.
func ClientFromPEM(caPEM []byte) (*tls.Config, error) {
	pool, err := parsePool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: parsing CAs: %w", err)
	}
	c := &tls.Config{RootCAs: pool}
	Harden(c)
	return c, nil
}
