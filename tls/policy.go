package tlsconfig

import (
	"crypto/tls"
	"crypto/x509"
)

// minVersion is the lowest protocol version any config of this package speaks.
const minVersion = tls.VersionTLS12

// cipherSuites are the TLS 1.2 suites allowed: ECDHE key exchange (forward
// secrecy) with an AEAD cipher. Both AES-128-GCM suites are present because
// HTTP/2 requires one of them (RFC 7540, section 9.2.2) and net/http refuses
// to start h2 without it.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// curves are the key exchanges allowed: X25519 and P-256, and the hybrid
// post-quantum exchanges built on them. Go ignores the order and applies its
// own preference, which puts the hybrids first.
var curves = []tls.CurveID{
	tls.X25519MLKEM768,
	tls.SecP256r1MLKEM768,
	tls.X25519,
	tls.CurveP256,
}

// Harden applies the project's floor to c: MinVersion is raised to TLS 1.2
// when lower, and CipherSuites and CurvePreferences are replaced by the
// allowed lists (see the package comment). Other fields are left alone.
// Every config this package builds has been through Harden; call it on a
// config built elsewhere before use.
func Harden(c *tls.Config) {
	if c.MinVersion < minVersion {
		c.MinVersion = minVersion
	}
	c.CipherSuites = append([]uint16(nil), cipherSuites...)
	c.CurvePreferences = append([]tls.CurveID(nil), curves...)
}

// VerifiedClient returns the client certificate of a connection whose chain
// the server verified against its client CAs, or nil when there is none.
// HTTP handlers pass r.TLS. It never returns an unverified certificate: use
// it rather than reading PeerCertificates, which a config that only requests
// certificates fills without verification.
func VerifiedClient(cs *tls.ConnectionState) *x509.Certificate {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	return cs.VerifiedChains[0][0]
}
