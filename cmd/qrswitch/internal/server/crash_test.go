package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// childEnv names the configuration file a re-executed test binary serves.
const childEnv = "QRSWITCH_TEST_CHILD_CONFIG"

// TestMain lets the test binary double as a switch process that a test can
// kill -9: with childEnv set it serves the named configuration until killed.
func TestMain(m *testing.M) {
	if path := os.Getenv(childEnv); path != "" {
		go exitWithParent()
		os.Exit(serveChild(path))
	}
	os.Exit(m.Run())
}

// exitWithParent ends a child switch when its parent test binary is gone,
// however it went: the parent holds the write end of the child's stdin, so
// the read returns when the parent exits or is killed, and no orphaned
// switch outlives an interrupted test run.
func exitWithParent() {
	io.Copy(io.Discard, os.Stdin)
	os.Exit(3)
}

func serveChild(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var cfg config.Config
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg.ApplyDefaults()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	srv, err := New(context.Background(), &cfg, log, Options{LateWindow: time.Second, SAFPoll: 50 * time.Millisecond, LeaseMargin: time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	// Tell the parent where we listen.
	fmt.Printf("LISTEN %s\n", srv.Addr())
	if err := srv.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// child is a switch running in another process.
type child struct {
	cmd  *exec.Cmd
	addr string
}

// childFiles writes cfg where a child switch reads it and opens the file
// its log goes to (closed when t ends).
func childFiles(t *testing.T, dir string, cfg *config.Config) (cfgFile string, logs *os.File) {
	t.Helper()
	cfgFile = filepath.Join(dir, "qrswitch.yaml")
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logs, err = os.Create(filepath.Join(dir, "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	return cfgFile, logs
}

func startChild(t *testing.T, cfgFile string, logs *os.File) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+cfgFile)
	cmd.Stderr = logs
	if _, err := cmd.StdinPipe(); err != nil { // held open until this process ends
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 128)
	n, err := out.Read(line)
	if err != nil || !strings.HasPrefix(string(line[:n]), "LISTEN ") {
		t.Fatalf("child switch did not start: %q %v (logs in %s)", line[:n], err, logs.Name())
	}
	return &child{cmd: cmd, addr: strings.TrimSpace(strings.TrimPrefix(string(line[:n]), "LISTEN "))}
}

func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
}

// freePort returns a loopback address nobody listens on right now, so a
// restarted switch keeps its address. It is below the ephemeral range (see
// newLaneProxy), where no outgoing connection can take it while the switch
// is down.
func freePort(t testing.TB) string {
	for range 200 {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", stablePortLow+rand.IntN(stablePortHigh-stablePortLow)))
		if err != nil {
			continue // taken: another port
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	t.Fatalf("no free port in [%d, %d)", stablePortLow, stablePortHigh)
	return ""
}

// TestCrashRestartDeliversEveryAdviceOnce kills the switch process with
// SIGKILL while advices are queued (the partner failing them) and while
// payments are in flight, restarts it on the same store, and shows from the
// partner's ledger that every confirmation and reversal took effect exactly
// once, that payments caught in flight were reversed, and that nothing is
// left without a final outcome. Advices whose sends hung at the kill carry
// leases of the dead process; the restarted sole owner releases them at
// once instead of waiting for them to expire.
func TestCrashRestartDeliversEveryAdviceOnce(t *testing.T) {
	dir := t.TempDir()
	simURL, simCA, makeSim := startSim(t, dir, 3*time.Second)
	cfg := testConfig(dir, simURL, simCA)
	cfg.Listen, cfg.AdminListen = freePort(t), freePort(t)
	cfgFile, logs := childFiles(t, dir, cfg)
	c := startChild(t, cfgFile, logs)
	caFile := filepath.Join(dir, "tls", "ca.pem")
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	h := &Harness{Cfg: cfg, Base: "https://" + c.addr,
		Client: &http.Client{Timeout: settle, Transport: &http.Transport{TLSClientConfig: clientTLS}}}
	h.Sim = makeSim(h.Base, clientTLS)

	// Approve payments, then queue advices the partner refuses with 500.
	const n = 24
	var confirmed, reversed []string
	for i := range n {
		req := h.approvedPayment(t, int64(9000+i))
		if i%3 == 0 {
			reversed = append(reversed, req.ID)
		} else {
			confirmed = append(confirmed, req.ID)
		}
	}
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
		t.Fatal(err)
	}
	adviceOf := map[string]string{}
	for _, id := range confirmed {
		c := confirmation(id)
		adviceOf[id] = c.ID
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, c); r.status != 202 {
			t.Fatalf("confirm = %d %s", r.status, r.body)
		}
	}
	for _, id := range reversed {
		r := reversal(id, wire.ReasonCancelled)
		adviceOf[id] = r.ID
		if resp := h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, r); resp.status != 202 {
			t.Fatalf("reverse = %d %s", resp.status, resp.body)
		}
	}
	// Two payments caught mid-flight: one forwarded to a slow partner, one
	// still waiting for its scan.
	tranSlow, payloadSlow := h.createQR(t)
	slow := payRequest("1234", tranSlow, 9970) // the partner answers after the switch gave up
	slowAnswer := h.payAsync(slow)
	tranWait, _ := h.createQR(t)
	waiting := payRequest("1234", tranWait, 9100)
	waitAnswer := h.payAsync(waiting)
	time.Sleep(200 * time.Millisecond)
	h.scanAsync(payloadSlow)
	eventually(t, "the slow payment reaching the partner", func() bool { _, ok := h.ledgerPayment(slow.ID); return ok })
	// Now the partner stops answering: sends hang, each under a lease the
	// killed process will never release.
	h.Sim.ClearFaults()
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.FaultHang}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)

	c.kill(t)
	if r := <-slowAnswer; r.status != -1 {
		t.Fatalf("held payment answered %d across a kill -9", r.status)
	}
	<-waitAnswer

	// The partner comes back; the switch restarts on the same store.
	h.Sim.ClearFaults()
	c = startChild(t, cfgFile, logs)
	h.Base = "https://" + c.addr

	final := map[string]string{}
	eventually(t, "every payment final after restart", func() bool {
		for _, id := range append(append(append([]string{}, confirmed...), reversed...), slow.ID, waiting.ID) {
			r := h.Do(t, http.MethodGet, "/support/v1/transactions/"+id, SupUser, SupPass, nil)
			var out struct{ Results []qrswitch.Story }
			if r.status != 200 || json.Unmarshal(r.body, &out) != nil || len(out.Results) != 1 {
				return false
			}
			final[id] = string(out.Results[0].Payment.State)
		}
		for _, s := range final {
			if s != "CONFIRMED" && s != "REVERSED" && s != "NO_SCAN" {
				return false
			}
		}
		return true
	})
	ledger := h.Sim.Ledger()
	effects := map[string][]electrumsim.State{}
	deliveries := 0
	for _, a := range ledger.Advices {
		if a.EffectApplied {
			effects[a.RequestID] = append(effects[a.RequestID], a.Effect)
		}
		deliveries += a.Deliveries
	}
	for _, id := range confirmed {
		if final[id] != "CONFIRMED" || len(effects[id]) != 1 || effects[id][0] != electrumsim.StateCaptured {
			t.Errorf("confirmed payment %s: state %s, partner effects %v; want CONFIRMED and captured once", id, final[id], effects[id])
		}
	}
	for _, id := range reversed {
		if final[id] != "REVERSED" || len(effects[id]) != 1 || effects[id][0] != electrumsim.StateReleased {
			t.Errorf("reversed payment %s: state %s, partner effects %v; want REVERSED and released once", id, final[id], effects[id])
		}
	}
	if final[slow.ID] != "REVERSED" || len(effects[slow.ID]) > 1 {
		t.Errorf("payment in flight at the kill: state %s, effects %v; want REVERSED (timeout reversal), at most one effect", final[slow.ID], effects[slow.ID])
	}
	if final[waiting.ID] != "NO_SCAN" {
		t.Errorf("payment waiting for its scan at the kill: state %s, want NO_SCAN", final[waiting.ID])
	}
	if _, sent := h.ledgerPayment(waiting.ID); sent {
		t.Error("the payment waiting for its scan reached the partner")
	}
	t.Logf("crash test: %d confirmations and %d reversals queued at kill -9; %d advice deliveries; every effect applied once",
		len(confirmed), len(reversed), deliveries)
}
