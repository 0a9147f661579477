package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reloadFixture is a server on files that the test rewrites.
type reloadFixture struct {
	ca                *authority
	certFile, keyFile string
	srv               *Server
	addr              string
	client            *tls.Config
}

func newReloadFixture(t *testing.T, o ServerOptions, onError func(error)) *reloadFixture {
	t.Helper()
	dir := t.TempDir()
	f := &reloadFixture{
		ca:       testAuthority(t),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server-key.pem"),
	}
	f.rotate(t)
	o.CertFile, o.KeyFile = f.certFile, f.keyFile
	srv, err := NewServer(o, onError)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	f.srv = srv
	f.addr = serve(t, srv.Config())
	f.client = &tls.Config{RootCAs: poolOf(f.ca)}
	Harden(f.client)
	return f
}

// rotate writes a new certificate, with a new serial, and returns it.
func (f *reloadFixture) rotate(t *testing.T) *x509.Certificate {
	t.Helper()
	return writeLeaf(t, f.ca, f.certFile, f.keyFile, time.Now(), time.Hour)
}

// newConnSerial returns the serial a brand-new connection is served.
func (f *reloadFixture) newConnSerial(t *testing.T) string {
	t.Helper()
	cs, err := handshake(f.addr, f.client)
	if err != nil {
		t.Fatalf("new connection: %v", err)
	}
	return cs.PeerCertificates[0].SerialNumber.String()
}

func TestServerReload(t *testing.T) {
	f := newReloadFixture(t, ServerOptions{}, nil)
	first := f.srv.Leaf().SerialNumber.String()

	old := newClient(t, f.client)
	a, err := get(old, f.addr)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	if got := a.serial.String(); got != first {
		t.Fatalf("first request served serial %s, want %s", got, first)
	}

	second := f.rotate(t).SerialNumber.String()
	if err := f.srv.Reload(); err != nil {
		t.Fatalf("Reload() = %v, want nil", err)
	}
	if got := f.newConnSerial(t); got != second {
		t.Errorf("new connection after Reload served serial %s, want %s", got, second)
	}
	a, err = get(old, f.addr)
	if err != nil {
		t.Fatalf("request on the connection opened before Reload: %v", err)
	}
	if !a.reused || a.serial.String() != first {
		t.Errorf("request after Reload: reused=%v serial=%s, want reused=true serial=%s", a.reused, a.serial, first)
	}

	writeFile(t, filepath.Dir(f.certFile), filepath.Base(f.certFile), []byte("garbage"))
	if err := f.srv.Reload(); err == nil {
		t.Fatal("Reload() from a garbage certificate = nil, want an error")
	}
	if got := f.newConnSerial(t); got != second {
		t.Errorf("after a failed Reload a new connection was served serial %s, want %s", got, second)
	}
	if got := f.srv.Leaf().SerialNumber.String(); got != second {
		t.Errorf("Leaf() after a failed Reload = serial %s, want %s", got, second)
	}
	if _, err := get(old, f.addr); err != nil {
		t.Errorf("old connection after a failed Reload: %v", err)
	}
}

func TestServerWatch(t *testing.T) {
	reloads := make(chan *x509.Certificate, 16)
	errs := make(chan error, 16)
	f := newReloadFixture(t,
		ServerOptions{OnReload: func(c *x509.Certificate) { reloads <- c }},
		func(err error) { errs <- err })
	<-reloads // NewServer's own load

	const interval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		f.srv.Watch(ctx, interval)
	}()
	defer func() {
		cancel()
		select {
		case <-stopped:
		case <-time.After(testTimeout):
			t.Error("Watch did not return after its context was cancelled")
		}
	}()

	// waitFor waits until Watch has loaded want; the key and certificate are
	// two renames, so a poll between them may report a mismatch first.
	waitFor := func(want string) {
		t.Helper()
		deadline := time.After(testTimeout)
		for {
			select {
			case c := <-reloads:
				if c.SerialNumber.String() == want {
					return
				}
			case <-errs:
			case <-deadline:
				t.Fatalf("Watch did not load serial %s; serving %s", want, f.srv.Leaf().SerialNumber)
			}
		}
	}

	second := f.rotate(t).SerialNumber.String()
	waitFor(second)
	if got := f.newConnSerial(t); got != second {
		t.Errorf("new connection after Watch reload served serial %s, want %s", got, second)
	}

	// Atomically: an in-place rewrite is two versions (empty, then garbage)
	// that Watch may rightly report twice.
	if err := writeFileAtomic(f.certFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), f.certFile) {
			t.Errorf("Watch reported %q, want it to name %s", err, f.certFile)
		}
	case <-time.After(testTimeout):
		t.Fatal("Watch did not report the garbage certificate")
	}
	time.Sleep(20 * interval)
	if n := len(errs); n != 0 {
		t.Errorf("Watch reported the same broken files %d more times, want once", n)
	}
	if got := f.newConnSerial(t); got != second {
		t.Errorf("after a failed Watch reload a new connection was served serial %s, want %s", got, second)
	}

	third := f.rotate(t).SerialNumber.String()
	waitFor(third)
	if got := f.srv.NotAfter(); !got.Equal(f.srv.Leaf().NotAfter) || got.IsZero() {
		t.Errorf("NotAfter() = %v, want the served leaf's %v", got, f.srv.Leaf().NotAfter)
	}
}

func TestNewServerOptions(t *testing.T) {
	dir := t.TempDir()
	ca := testAuthority(t)
	certFile, keyFile := filepath.Join(dir, "ok.pem"), filepath.Join(dir, "ok-key.pem")
	writeLeaf(t, ca, certFile, keyFile, time.Now(), time.Hour)
	expCert, expKey := filepath.Join(dir, "expired.pem"), filepath.Join(dir, "expired-key.pem")
	writeLeaf(t, ca, expCert, expKey, time.Now().Add(-3*time.Hour), time.Hour)
	_, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	writeLeaf(t, ca, filepath.Join(dir, "other.pem"), otherKey, time.Now(), time.Hour)
	caFile := writeFile(t, dir, "clients.pem", encodeCert(ca.cert.Raw))
	keyAsCA := writeFile(t, dir, "key-as-ca.pem", mustRead(t, keyFile))

	tests := []struct {
		name    string
		o       ServerOptions
		wantErr string // empty: success
		want    tls.ClientAuthType
	}{
		{name: "no client auth", o: ServerOptions{}, want: tls.NoClientCert},
		{name: "CA file implies request", o: ServerOptions{ClientCAFile: caFile}, want: tls.VerifyClientCertIfGiven},
		{name: "require", o: ServerOptions{ClientCAFile: caFile, ClientAuth: ClientAuthRequire}, want: tls.RequireAndVerifyClientCert},
		{name: "require-and-verify", o: ServerOptions{ClientCAFile: caFile, ClientAuth: "require-and-verify"}, want: tls.RequireAndVerifyClientCert},
		{name: "missing key file name", o: ServerOptions{KeyFile: "-"}, wantErr: "both required"},
		{name: "unknown mode", o: ServerOptions{ClientCAFile: caFile, ClientAuth: "optional"}, wantErr: "unknown client auth"},
		{name: "request without CA", o: ServerOptions{ClientAuth: ClientAuthRequest}, wantErr: "needs a client CA file"},
		{name: "none with CA", o: ServerOptions{ClientCAFile: caFile, ClientAuth: ClientAuthNone}, wantErr: "given with client auth"},
		{name: "key in CA file", o: ServerOptions{ClientCAFile: keyAsCA}, wantErr: "want CERTIFICATE"},
		{name: "missing CA file", o: ServerOptions{ClientCAFile: filepath.Join(dir, "nope.pem")}, wantErr: "no such file"},
		{name: "expired", o: ServerOptions{CertFile: expCert, KeyFile: expKey}, wantErr: "expired"},
		{name: "key mismatch", o: ServerOptions{KeyFile: otherKey}, wantErr: "does not match"},
		{name: "missing certificate", o: ServerOptions{CertFile: filepath.Join(dir, "nope.pem")}, wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			if o.CertFile == "" {
				o.CertFile = certFile
			}
			if o.KeyFile == "" {
				o.KeyFile = keyFile
			} else if o.KeyFile == "-" {
				o.KeyFile = ""
			}
			s, err := NewServer(o, nil)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewServer() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewServer() = %v, want nil", err)
			}
			if got := s.Config().ClientAuth; got != tt.want {
				t.Errorf("ClientAuth = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMutualTLS runs every client auth mode against clients with no
// certificate, one from the client CA and one from another CA.
func TestMutualTLS(t *testing.T) {
	clients, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	strangers, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	good, err := clients.ClientCertificate("pos-1")
	if err != nil {
		t.Fatal(err)
	}
	bad, err := strangers.ClientCertificate("intruder")
	if err != nil {
		t.Fatal(err)
	}
	caFile := writeFile(t, t.TempDir(), "clients.pem", clients.CAPEM)

	const refused = "refused"
	tests := []struct {
		mode string
		cert *tls.Certificate
		want string // the verified client name the handler saw, or refused
	}{
		{ClientAuthNone, nil, "-"},
		{ClientAuthNone, &good, "-"},
		{ClientAuthRequest, nil, "-"},
		{ClientAuthRequest, &good, "pos-1"},
		{ClientAuthRequest, &bad, refused},
		{ClientAuthRequire, nil, refused},
		{ClientAuthRequire, &good, "pos-1"},
		{ClientAuthRequire, &bad, refused},
	}
	for _, tt := range tests {
		certName := "no certificate"
		if tt.cert != nil {
			certName = tt.cert.Leaf.Subject.CommonName
		}
		t.Run(tt.mode+"/"+certName, func(t *testing.T) {
			o := ServerOptions{ClientAuth: tt.mode}
			if tt.mode != ClientAuthNone {
				o.ClientCAFile = caFile
			}
			f := newReloadFixture(t, o, nil)
			c := f.client.Clone()
			if tt.cert != nil {
				c.Certificates = []tls.Certificate{*tt.cert}
			}
			a, err := get(newClient(t, c), f.addr)
			got := a.body
			if err != nil {
				got = refused
			}
			if got != tt.want {
				t.Errorf("client auth %s with %s: got %q (err %v), want %q", tt.mode, certName, got, err, tt.want)
			}
		})
	}
}

func TestVerifiedClientNil(t *testing.T) {
	if got := VerifiedClient(nil); got != nil {
		t.Errorf("VerifiedClient(nil) = %v, want nil", got.Subject)
	}
	if got := VerifiedClient(&tls.ConnectionState{}); got != nil {
		t.Errorf("VerifiedClient(no chains) = %v, want nil", got.Subject)
	}
}
