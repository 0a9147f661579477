package partners

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
	"time"
)

// ErrPrivateAddress refuses a connection to a loopback, private,
// link-local or unspecified address through a PublicOnly transport.
var ErrPrivateAddress = errors.New("refusing a loopback or private address")

// PublicOnly returns transport (http.DefaultTransport when nil) refusing
// to connect to loopback, private, link-local, multicast and unspecified
// addresses. Rails whose protocols make the switch fetch URLs that the
// other side names (a client's jwks.json, a brand's manifest and its
// accountants) use it, so that nobody can point the switch into the
// operator's own network; a development setup or an operator's explicit
// option leaves it out. A transport that is not an *http.Transport is
// returned as it is.
func PublicOnly(transport http.RoundTripper) http.RoundTripper {
	base, ok := transport.(*http.Transport)
	if transport == nil {
		base, ok = http.DefaultTransport.(*http.Transport)
	}
	if !ok {
		return transport
	}
	t := base.Clone()
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
			ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
			return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
		}
		return nil
	}}
	t.DialContext = dialer.DialContext
	return t
}
