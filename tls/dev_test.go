package tlsconfig

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func fingerprint(c *x509.Certificate) string { return fmt.Sprintf("%x", sha256.Sum256(c.Raw)) }

// wantMode checks a file's permission bits where the OS has them.
func wantMode(t *testing.T, file string, want os.FileMode) {
	t.Helper()
	if runtime.GOOS == "windows" {
		return
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", filepath.Base(file), got, want)
	}
}

// readCert returns the first certificate of file.
func readCert(t *testing.T, file string) *x509.Certificate {
	t.Helper()
	certs, err := parseCerts(mustRead(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return certs[0]
}

func TestOpenDevCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "var", "tls")
	first, err := OpenDevCA(dir)
	if err != nil {
		t.Fatalf("first OpenDevCA: %v", err)
	}
	if got, want := first.CertFile(), filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("CertFile() = %s, want %s", got, want)
	}
	wantMode(t, filepath.Join(dir, "ca-key.pem"), 0o600)
	wantMode(t, dir, 0o700)
	c := first.Certificate()
	if !c.IsCA || !slices.Contains(c.Subject.Organization, DevOrganization) {
		t.Errorf("CA IsCA=%v organization=%v, want true and %q", c.IsCA, c.Subject.Organization, DevOrganization)
	}
	if left := time.Until(c.NotAfter); left < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v more, want about 10 years", left)
	}

	second, err := OpenDevCA(dir)
	if err != nil {
		t.Fatalf("second OpenDevCA: %v", err)
	}
	if got, want := fingerprint(second.Certificate()), fingerprint(c); got != want {
		t.Errorf("second run CA fingerprint %s, want the first run's %s", got, want)
	}
	if got := fingerprint(readCert(t, second.CertFile())); got != fingerprint(c) {
		t.Errorf("ca.pem fingerprint %s, want %s", got, fingerprint(c))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("dir holds %d entries, want ca.pem and ca-key.pem only (no temporary or lock file left)", len(entries))
	}
}

// TestOpenDevCARenews covers the files OpenDevCA replaces and those it must
// not touch.
func TestOpenDevCARenews(t *testing.T) {
	other := testAuthority(t)
	otherKey, err := encodeKey(other.key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		prepare   func(t *testing.T, dir string) // after a CA was created
		wantNew   bool
		wantError string
	}{
		{
			name:    "valid CA kept",
			prepare: func(*testing.T, string) {},
		},
		{
			name: "expiring CA replaced",
			prepare: func(t *testing.T, dir string) {
				old, err := newAuthority(DevOrganization, time.Now().Add(-devCAValidity), devCAValidity+10*24*time.Hour)
				if err != nil {
					t.Fatal(err)
				}
				if err := writePair(filepath.Join(dir, devCACert), filepath.Join(dir, devCAKey), old.cert.Raw, old.key); err != nil {
					t.Fatal(err)
				}
			},
			wantNew: true,
		},
		{
			name: "key of another CA replaced",
			prepare: func(t *testing.T, dir string) {
				writeFile(t, dir, devCAKey, otherKey)
			},
			wantNew: true,
		},
		{
			name: "key without certificate replaced",
			prepare: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, devCACert)); err != nil {
					t.Fatal(err)
				}
			},
			wantNew: true,
		},
		{
			name: "foreign CA refused",
			prepare: func(t *testing.T, dir string) {
				writeFile(t, dir, devCACert, encodeCert(other.cert.Raw))
			},
			wantError: "not a development certificate",
		},
		{
			name: "garbage refused",
			prepare: func(t *testing.T, dir string) {
				writeFile(t, dir, devCACert, []byte("garbage"))
			},
			wantError: "no PEM certificate",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			created, err := OpenDevCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			tt.prepare(t, dir)
			before, _ := os.ReadFile(filepath.Join(dir, devCACert))

			got, err := OpenDevCA(dir)
			if tt.wantError != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantError) {
					t.Fatalf("OpenDevCA() error = %v, want one containing %q", err, tt.wantError)
				}
				if after := mustRead(t, filepath.Join(dir, devCACert)); !bytes.Equal(after, before) {
					t.Error("ca.pem was overwritten, want it left alone")
				}
				return
			}
			if err != nil {
				t.Fatalf("OpenDevCA() = %v, want nil", err)
			}
			renewed := fingerprint(got.Certificate()) != fingerprint(created.Certificate())
			if renewed != tt.wantNew {
				t.Errorf("CA renewed = %v, want %v", renewed, tt.wantNew)
			}
			if !fresh(got.Certificate(), time.Now()) {
				t.Errorf("CA expires %v, want more than 30 days away", got.Certificate().NotAfter)
			}
			if _, err := tls.LoadX509KeyPair(got.CertFile(), filepath.Join(dir, devCAKey)); err != nil {
				t.Errorf("CA files do not form a pair: %v", err)
			}
		})
	}
}

func TestIssue(t *testing.T) {
	caDir, dir := t.TempDir(), filepath.Join(t.TempDir(), "leaf")
	dev, err := OpenDevCA(caDir)
	if err != nil {
		t.Fatal(err)
	}
	otherDev, err := OpenDevCA(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")

	// Steps run in order on the same files; each says whether Issue must
	// write a new certificate.
	steps := []struct {
		name    string
		ca      *DevCA
		prepare func(t *testing.T)
		hosts   []string
		wantNew bool
	}{
		{name: "first issue", hosts: nil, wantNew: true},
		{name: "same hosts reused", hosts: nil},
		{name: "same hosts in another spelling reused", hosts: []string{"::1", "LOCALHOST", "127.0.0.1", "localhost"}},
		{name: "hosts changed", hosts: []string{"switch.test", "10.0.0.1"}, wantNew: true},
		{name: "same changed hosts reused", hosts: []string{"10.0.0.1", "switch.test"}},
		{
			name:  "within 30 days of expiry",
			hosts: []string{"10.0.0.1", "switch.test"},
			prepare: func(t *testing.T) {
				der, key, err := dev.ca.issue("switch.test", []string{"10.0.0.1", "switch.test"},
					time.Now().Add(-devLeafValidity+10*24*time.Hour), devLeafValidity)
				if err != nil {
					t.Fatal(err)
				}
				if err := writePair(certFile, keyFile, der, key); err != nil {
					t.Fatal(err)
				}
			},
			wantNew: true,
		},
		{
			name:  "key lost",
			hosts: []string{"10.0.0.1", "switch.test"},
			prepare: func(t *testing.T) {
				if err := os.Remove(keyFile); err != nil {
					t.Fatal(err)
				}
			},
			wantNew: true,
		},
		{name: "another dev CA", ca: otherDev, hosts: []string{"10.0.0.1", "switch.test"}, wantNew: true},
	}
	var last string
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ca := st.ca
			if ca == nil {
				ca = dev
			}
			if st.prepare != nil {
				st.prepare(t)
				last = fingerprint(readCert(t, certFile))
			}
			gotCert, gotKey, err := ca.Issue(dir, "server", st.hosts)
			if err != nil {
				t.Fatalf("Issue() = %v", err)
			}
			if gotCert != certFile || gotKey != keyFile {
				t.Errorf("Issue() = %s, %s, want %s, %s", gotCert, gotKey, certFile, keyFile)
			}
			wantMode(t, keyFile, 0o600)
			leaf := readCert(t, certFile)
			if renewed := fingerprint(leaf) != last; renewed != st.wantNew {
				t.Errorf("certificate renewed = %v, want %v", renewed, st.wantNew)
			}
			last = fingerprint(leaf)

			hosts := st.hosts
			if len(hosts) == 0 {
				hosts = loopbackHosts
			}
			roots := x509.NewCertPool()
			roots.AddCert(ca.Certificate())
			for _, h := range hosts {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: roots}); err != nil {
					t.Errorf("leaf does not verify for %s: %v", h, err)
				}
			}
			if left := time.Until(leaf.NotAfter); left < 364*24*time.Hour {
				t.Errorf("leaf valid for %v more, want about a year", left)
			}
			if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
				t.Errorf("leaf files do not form a pair: %v", err)
			}
		})
	}
}

func TestIssueRefuses(t *testing.T) {
	dir := t.TempDir()
	dev, err := OpenDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	foreign := encodeCert(e.Server.Certificates[0].Certificate[0])
	writeFile(t, dir, "partner.pem", foreign)

	tests := []struct {
		name, certName string
		hosts          []string
		wantErr        string
	}{
		{"empty name", "", nil, "invalid certificate name"},
		{"the CA's name", "ca", nil, "invalid certificate name"},
		{"the CA's name upper case", "CA", nil, "invalid certificate name"},
		{"the CA key's name", "ca-key", nil, "invalid certificate name"},
		{"path", "../server", nil, "invalid certificate name"},
		{"dot", ".", nil, "invalid certificate name"},
		{"empty host", "server", []string{"localhost", ""}, "invalid host"},
		{"host with port", "server", []string{"localhost:8443"}, "invalid host"},
		{"foreign certificate", "partner", nil, "not a development certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := dev.Issue(dir, tt.certName, tt.hosts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Issue(%q, %q) error = %v, want one containing %q", tt.certName, tt.hosts, err, tt.wantErr)
			}
		})
	}
	if got := mustRead(t, filepath.Join(dir, "partner.pem")); !bytes.Equal(got, foreign) {
		t.Error("partner.pem was overwritten, want it left alone")
	}
}

func TestIsDevCertificate(t *testing.T) {
	dir := t.TempDir()
	dev, err := OpenDevCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	leaf, leafKey, err := dev.Issue(dir, "server", nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEphemeral()
	if err != nil {
		t.Fatal(err)
	}
	other := testAuthority(t)
	otherCert, _ := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	writeLeaf(t, other, otherCert, filepath.Join(dir, "other-key.pem"), time.Now(), time.Hour)

	tests := []struct {
		name    string
		file    string
		want    bool
		wantErr bool
	}{
		{name: "dev leaf", file: leaf, want: true},
		{name: "dev CA", file: dev.CertFile(), want: true},
		{name: "dev key and leaf in one file", file: writeFile(t, dir, "combined.pem", append(mustRead(t, leafKey), mustRead(t, leaf)...)), want: true},
		{name: "ephemeral leaf", file: writeFile(t, dir, "eph.pem", encodeCert(e.Server.Certificates[0].Certificate[0]))},
		{name: "ephemeral CA", file: writeFile(t, dir, "eph-ca.pem", e.CAPEM)},
		{name: "other CA's leaf", file: otherCert},
		{name: "garbage", file: writeFile(t, dir, "garbage.pem", []byte("garbage")), wantErr: true},
		{name: "missing", file: filepath.Join(dir, "nope.pem"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := IsDevCertificate(tt.file)
			if (err != nil) != tt.wantErr {
				t.Fatalf("IsDevCertificate() error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("IsDevCertificate() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDevConcurrentFirstRun starts several processes and goroutines on one
// empty directory at once; all must end with the same CA and leaf, and the
// files must form matching pairs.
func TestDevConcurrentFirstRun(t *testing.T) {
	dir := t.TempDir()
	const procs, goroutines = 4, 4
	results := make([]string, procs+goroutines)
	errs := make([]error, procs+goroutines)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestDevHelperProcess$")
			cmd.Env = append(os.Environ(), "QRSWITCH_TLS_HELPER_DIR="+dir)
			out, err := cmd.CombinedOutput()
			results[i], errs[i] = strings.TrimSpace(string(out)), err
			if err == nil && !strings.HasPrefix(results[i], "ca=") {
				errs[i] = fmt.Errorf("helper printed %q", out)
			}
		})
	}
	for i := procs; i < procs+goroutines; i++ {
		wg.Go(func() { results[i], errs[i] = openAndIssue(dir) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v (output %q)", i, err, results[i])
		}
	}
	for i, r := range results {
		// The helper also prints the test framework's PASS line.
		r = strings.Fields(r)[0]
		if want := strings.Fields(results[procs])[0]; r != want {
			t.Errorf("run %d got %s, want %s like run %d", i, r, want, procs)
		}
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, devCACert), filepath.Join(dir, devCAKey)); err != nil {
		t.Errorf("CA files do not form a pair: %v", err)
	}
	if _, err := tls.LoadX509KeyPair(filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")); err != nil {
		t.Errorf("leaf files do not form a pair: %v", err)
	}
}

// TestDevHelperProcess is run as a separate process by
// TestDevConcurrentFirstRun; on its own it does nothing.
func TestDevHelperProcess(t *testing.T) {
	dir := os.Getenv("QRSWITCH_TLS_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process for TestDevConcurrentFirstRun")
	}
	out, err := openAndIssue(dir)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(out)
}

// openAndIssue opens the dev CA in dir, issues the default leaf and returns
// "ca=<fingerprint>,leaf=<fingerprint>".
func openAndIssue(dir string) (string, error) {
	dev, err := OpenDevCA(dir)
	if err != nil {
		return "", err
	}
	certFile, _, err := dev.Issue(dir, "server", nil)
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(certFile)
	if err != nil {
		return "", err
	}
	certs, err := parseCerts(data)
	if err != nil {
		return "", err
	}
	return "ca=" + fingerprint(dev.Certificate()) + ",leaf=" + fingerprint(certs[0]), nil
}

func TestLockDirStale(t *testing.T) {
	dir := t.TempDir()
	lock := writeFile(t, dir, ".qrswitch-tls.lock", []byte("12345\n"))
	old := time.Now().Add(-2 * lockStale)
	if err := os.Chtimes(lock, old, old); err != nil {
		t.Fatal(err)
	}
	// A lock that were not broken would make OpenDevCA wait lockWait and
	// fail: its success is the verdict, not how fast it came.
	if _, err := OpenDevCA(dir); err != nil {
		t.Fatalf("OpenDevCA with a stale lock: %v", err)
	}
	if _, err := os.Stat(lock); !os.IsNotExist(err) {
		t.Errorf("lock file still present after OpenDevCA (stat error %v)", err)
	}
}
