package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// backdate moves NotBefore into the past so a peer whose clock runs a little
// behind accepts a certificate issued a moment ago.
const backdate = time.Hour

// authority is a CA certificate with its key: what DevCA and Ephemeral sign
// leaves with.
type authority struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newAuthority creates a self-signed ECDSA P-256 CA whose subject carries org
// as both common name and organization, valid from now for validity.
func newAuthority(org string, now time.Time, validity time.Duration) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: org, Organization: []string{org}},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// The CA signs leaves only, never another CA.
		MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	return &authority{cert: cert, key: key}, nil
}

// issue signs a new ECDSA P-256 leaf for hosts (DNS names or IP addresses),
// usable by servers and clients, valid from now for validity. Its subject has
// commonName and the authority's organization, which is what
// IsDevCertificate looks for.
func (a *authority) issue(commonName string, hosts []string, now time.Time, validity time.Duration) (
	certDER []byte, key *ecdsa.PrivateKey, err error,
) {
	key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating key: %w", err)
	}
	dns, ips := splitHosts(hosts)
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: commonName, Organization: a.cert.Subject.Organization},
		NotBefore:   now.Add(-backdate),
		NotAfter:    now.Add(validity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    dns,
		IPAddresses: ips,
	}
	if tmpl.NotAfter.After(a.cert.NotAfter) {
		// A leaf outliving its CA would fail verification early anyway.
		tmpl.NotAfter = a.cert.NotAfter
	}
	certDER, err = x509.CreateCertificate(rand.Reader, tmpl, a.cert, &key.PublicKey, a.key)
	if err != nil {
		return nil, nil, fmt.Errorf("creating certificate for %s: %w", commonName, err)
	}
	return certDER, key, nil
}

// splitHosts sorts hosts into DNS names and IP addresses.
func splitHosts(hosts []string) (dns []string, ips []net.IP) {
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// normalHosts returns hosts as a sorted set: DNS names lower-cased, IP
// addresses in their canonical text form.
func normalHosts(hosts []string) []string {
	out := make([]string, 0, len(hosts))
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			out = append(out, ip.String())
		} else {
			out = append(out, strings.ToLower(h))
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// certHosts returns the names a certificate is valid for, as normalHosts does.
func certHosts(c *x509.Certificate) []string {
	hosts := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		hosts = append(hosts, ip.String())
	}
	return normalHosts(hosts)
}

// encodeCert returns the PEM form of a DER certificate.
func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// encodeKey returns the PKCS #8 PEM form of a private key.
func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCerts returns every certificate in a PEM bundle. Unlike
// x509.CertPool.AppendCertsFromPEM it fails on a block it cannot use, so a
// damaged bundle or a key pasted by mistake is reported instead of silently
// trusting fewer certificates than the operator meant.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	certs, others, err := pemCerts(data)
	if len(others) > 0 {
		// Named first: a key alone in a CA file is a likelier mistake than
		// an empty file.
		return nil, fmt.Errorf("unexpected PEM block %q, want CERTIFICATE", others[0])
	}
	return certs, err
}

// pemCerts returns the certificates in PEM data and the types of the other
// blocks. It fails when a certificate does not parse or there is none.
func pemCerts(data []byte) (certs []*x509.Certificate, others []string, err error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			others = append(others, block.Type)
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, others, errors.New("no PEM certificate found")
	}
	return certs, others, nil
}

// parsePool returns a pool holding every certificate of a PEM bundle.
func parsePool(data []byte) (*x509.CertPool, error) {
	certs, err := parseCerts(data)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// readPool reads a PEM bundle file into a pool.
func readPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := parsePool(data)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	return pool, nil
}

// parseECKey returns the ECDSA key in the first PEM block of data.
func parseECKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM key found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("unexpected PEM block %q, want PRIVATE KEY", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing key: %w", err)
	}
	ec, ok := key.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ECDSA", key)
	}
	return ec, nil
}

// writeFileAtomic replaces path with data through a temporary file in the
// same directory and a rename, so a reader (or a crash) never sees a
// half-written file. The mode is set explicitly, independent of the umask.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Chmod(perm); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Lock timing. The lock is held for one key generation and a few small file
// writes, milliseconds; a lock older than lockStale was left by a process
// that died holding it.
const (
	lockPoll  = 10 * time.Millisecond
	lockStale = 10 * time.Second
	lockWait  = 30 * time.Second
)

// lockDir takes an exclusive lock on dir shared by every process, held until
// unlock is called. A certificate and its key live in two files, and two
// processes starting together could otherwise each write one of them and
// leave a pair that does not match; renames alone cannot prevent that.
func lockDir(dir string) (unlock func(), err error) {
	path := filepath.Join(dir, ".qrswitch-tls.lock")
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
			_ = f.Close()
			return func() { _ = os.Remove(path) }, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("locking %s: %w", dir, err)
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > lockStale {
			_ = os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("locking %s: %s held for more than %s", dir, path, lockWait)
		}
		time.Sleep(lockPoll)
	}
}
