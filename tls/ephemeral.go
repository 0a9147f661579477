package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// ephemeralOrganization marks ephemeral certificates; it differs from
// DevOrganization because nothing ephemeral ever reaches a file.
const ephemeralOrganization = "qrswitch ephemeral test CA"

// ephemeralValidity is long enough for any test run and short enough that a
// leaked certificate is worthless.
const ephemeralValidity = 24 * time.Hour

// Ephemeral is an in-memory CA with a server certificate signed by it: a
// real TLS server and a client that trusts it, for tests anywhere in the
// project. Nothing touches the disk.
//
//	e, err := tlsconfig.NewEphemeral()
//	ts := httptest.NewUnstartedServer(h)
//	ts.TLS = e.Server
//	ts.StartTLS()
//	c := &http.Client{Transport: &http.Transport{TLSClientConfig: e.Client}}
type Ephemeral struct {
	// Server is a hardened server config serving the leaf. Its Certificates
	// is set, so httptest.Server.StartTLS keeps it.
	Server *tls.Config
	// Client is a hardened client config trusting only the ephemeral CA. Its
	// RootCAs is the CA pool, also usable as a server's ClientCAs.
	Client *tls.Config
	// CAPEM is the CA certificate in PEM, for code that reads a CA file.
	CAPEM []byte

	ca *authority
}

// NewEphemeral creates an in-memory CA and a server certificate for hosts
// (localhost, 127.0.0.1 and ::1 when none), valid for a day.
func NewEphemeral(hosts ...string) (*Ephemeral, error) {
	if len(hosts) == 0 {
		hosts = loopbackHosts
	}
	if err := checkHosts(hosts); err != nil {
		return nil, err
	}
	now := time.Now()
	ca, err := newAuthority(ephemeralOrganization, now, ephemeralValidity)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: creating ephemeral CA: %w", err)
	}
	e := &Ephemeral{ca: ca, CAPEM: encodeCert(ca.cert.Raw)}
	leaf, err := e.certificate(hosts[0], hosts)
	if err != nil {
		return nil, err
	}
	e.Server = &tls.Config{Certificates: []tls.Certificate{leaf}}
	Harden(e.Server)
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	e.Client = &tls.Config{RootCAs: pool}
	Harden(e.Client)
	return e, nil
}

// ClientCertificate returns a new certificate with common name name, signed
// by the ephemeral CA, for a client to present in mutual TLS tests.
func (e *Ephemeral) ClientCertificate(name string) (tls.Certificate, error) {
	return e.certificate(name, nil)
}

func (e *Ephemeral) certificate(name string, hosts []string) (tls.Certificate, error) {
	der, key, err := e.ca.issue(name, hosts, time.Now(), ephemeralValidity)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: issuing ephemeral certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: parsing ephemeral certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
