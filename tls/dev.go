package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DevOrganization is the subject organization of the development CA and of
// every certificate it issues. IsDevCertificate looks for it.
const DevOrganization = "qrswitch development CA"

// Development certificate lifetimes. A certificate is renewed on the first
// open or issue that finds it within devRenewBefore of its end, so a switch
// restarted now and then never serves an expired one.
const (
	devCAValidity   = 10 * 365 * 24 * time.Hour
	devLeafValidity = 365 * 24 * time.Hour
	devRenewBefore  = 30 * 24 * time.Hour
)

// File names of the development CA inside its directory.
const (
	devCACert = "ca.pem"
	devCAKey  = "ca-key.pem"
)

// loopbackHosts are the names a certificate covers when given none: what a
// developer dials on their own machine.
var loopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// DevCA is a development certificate authority kept on disk, so the
// certificates it issues stay trusted by a developer's tools across restarts.
// Never use it in production: IsDevCertificate lets production configuration
// refuse what it issues.
type DevCA struct {
	dir string
	ca  *authority
}

// OpenDevCA loads the development CA kept in dir (ca.pem and ca-key.pem), or
// creates it when there is none yet or it is within 30 days of expiry. The
// CA is an ECDSA P-256 key valid for 10 years; the key file has mode 0600.
// dir is created with mode 0700 if needed. Processes opening the same dir at
// once agree on one CA. A ca.pem that is not a development CA is an error,
// never overwritten.
func OpenDevCA(dir string) (*DevCA, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconfig: creating %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: opening development CA: %w", err)
	}
	defer unlock()

	certFile, keyFile := filepath.Join(dir, devCACert), filepath.Join(dir, devCAKey)
	now := time.Now()
	ca, err := loadDevAuthority(certFile, keyFile)
	switch {
	case err == nil && fresh(ca.cert, now):
		return &DevCA{dir: dir, ca: ca}, nil
	case err != nil && !errors.Is(err, errRenew):
		return nil, fmt.Errorf("tlsconfig: opening development CA: %w", err)
	}
	if ca, err = newAuthority(DevOrganization, now, devCAValidity); err != nil {
		return nil, fmt.Errorf("tlsconfig: creating development CA: %w", err)
	}
	if err := writePair(certFile, keyFile, ca.cert.Raw, ca.key); err != nil {
		return nil, fmt.Errorf("tlsconfig: writing development CA: %w", err)
	}
	return &DevCA{dir: dir, ca: ca}, nil
}

// CertFile returns the path of the CA certificate, the file clients trust
// (curl --cacert).
func (d *DevCA) CertFile() string { return filepath.Join(d.dir, devCACert) }

// Certificate returns the CA certificate.
func (d *DevCA) Certificate() *x509.Certificate { return d.ca.cert }

// Issue returns the files of a leaf certificate signed by the CA for hosts,
// DNS names or IP addresses (localhost, 127.0.0.1 and ::1 when empty):
// name.pem and name-key.pem in dir. It reuses the files when they already
// hold a leaf of this CA for exactly these hosts with more than 30 days left,
// and otherwise issues a new ECDSA P-256 leaf valid for a year, for server
// and client use. The key file has mode 0600. A name.pem that is not a
// development certificate is an error, never overwritten. Processes issuing
// into the same dir at once agree on one leaf.
func (d *DevCA) Issue(dir, name string, hosts []string) (certFile, keyFile string, err error) {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." ||
		strings.EqualFold(name, "ca") || strings.EqualFold(name, "ca-key") { // the CA's own files
		return "", "", fmt.Errorf("tlsconfig: invalid certificate name %q", name)
	}
	if len(hosts) == 0 {
		hosts = loopbackHosts
	}
	if err := checkHosts(hosts); err != nil {
		return "", "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("tlsconfig: creating %s: %w", dir, err)
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return "", "", fmt.Errorf("tlsconfig: issuing %s: %w", name, err)
	}
	defer unlock()

	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
	now := time.Now()
	err = d.check(certFile, keyFile, hosts, now)
	switch {
	case err == nil:
		return certFile, keyFile, nil
	case !errors.Is(err, errRenew):
		return "", "", fmt.Errorf("tlsconfig: issuing %s: %w", name, err)
	}
	der, key, err := d.ca.issue(hosts[0], hosts, now, devLeafValidity)
	if err != nil {
		return "", "", fmt.Errorf("tlsconfig: issuing %s: %w", name, err)
	}
	if err := writePair(certFile, keyFile, der, key); err != nil {
		return "", "", fmt.Errorf("tlsconfig: writing %s: %w", name, err)
	}
	return certFile, keyFile, nil
}

// checkHosts refuses what cannot be a certificate name, such as a host with
// a port, which a flag or config value may well carry.
func checkHosts(hosts []string) error {
	for _, h := range hosts {
		if net.ParseIP(h) == nil && (h == "" || strings.ContainsAny(h, ":/ ")) {
			return fmt.Errorf("tlsconfig: invalid host %q, want a DNS name or an IP address", h)
		}
	}
	return nil
}

// errRenew says files are missing or stale and may be replaced.
var errRenew = errors.New("renew")

// check returns nil when certFile and keyFile hold a usable leaf of d for
// hosts, errRenew when they should be replaced, and another error when
// certFile holds something that is not ours to replace.
func (d *DevCA) check(certFile, keyFile string, hosts []string, now time.Time) error {
	leaf, err := readDevCert(certFile)
	if err != nil {
		return err
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return errRenew
	}
	if leaf.CheckSignatureFrom(d.ca.cert) != nil || !fresh(leaf, now) ||
		!slices.Equal(certHosts(leaf), normalHosts(hosts)) {
		return errRenew
	}
	return nil
}

// loadDevAuthority reads a development CA. It returns errRenew when the
// files are missing or the key does not match: the state a crash between
// the two writes of writePair leaves.
func loadDevAuthority(certFile, keyFile string) (*authority, error) {
	cert, err := readDevCert(certFile)
	if err != nil {
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", certFile)
	}
	data, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, errRenew
	}
	key, err := parseECKey(data)
	if err != nil || !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errRenew
	}
	return &authority{cert: cert, key: key}, nil
}

// readDevCert returns the first certificate of file; errRenew when the file
// does not exist, an error when it is not a development certificate.
func readDevCert(file string) (*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errRenew
	}
	if err != nil {
		return nil, err
	}
	certs, _, err := pemCerts(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if !isDev(certs[0]) {
		return nil, fmt.Errorf("%s is not a development certificate; move it away or choose another directory",
			file)
	}
	return certs[0], nil
}

// writePair writes a key and its certificate, each atomically. A crash
// between the two leaves a key without its certificate, which the next open
// or issue detects and replaces.
func writePair(certFile, keyFile string, certDER []byte, key *ecdsa.PrivateKey) error {
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(certFile, encodeCert(certDER), 0o644)
}

// fresh reports whether c is valid now and for more than devRenewBefore.
func fresh(c *x509.Certificate, now time.Time) bool {
	return !now.Before(c.NotBefore) && now.Add(devRenewBefore).Before(c.NotAfter)
}

// isDev reports whether c is the development CA or was issued by it.
func isDev(c *x509.Certificate) bool {
	return slices.Contains(c.Subject.Organization, DevOrganization) ||
		slices.Contains(c.Issuer.Organization, DevOrganization)
}

// IsDevCertificate reports whether certFile holds a certificate made by a
// DevCA (the development CA itself or a leaf it issued), so production
// configuration can refuse to serve it. Blocks other than certificates, such
// as a key kept in the same file, are ignored.
func IsDevCertificate(certFile string) (bool, error) {
	data, err := os.ReadFile(certFile)
	if err != nil {
		return false, fmt.Errorf("tlsconfig: checking certificate: %w", err)
	}
	certs, _, err := pemCerts(data)
	if err != nil {
		return false, fmt.Errorf("tlsconfig: checking certificate %s: %w", certFile, err)
	}
	return slices.ContainsFunc(certs, isDev), nil
}
