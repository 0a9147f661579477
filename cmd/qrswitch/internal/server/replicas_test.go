package server

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	"github.com/qrswitch/qrswitch/partners/railtest"
	redisstore "github.com/qrswitch/qrswitch/store/redis"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// These tests run switches on real redis-server processes: several
// replicas sharing one Redis behave as one switch, a replica killed while it
// sends advices has them taken over, Redis going away and coming back, and
// a Sentinel failover.

// onRedis runs a harness's switch on the Redis store at url.
func onRedis(url string) HarnessOption {
	return func(c *config.Config, _ *Options) { c.Store.URL = url }
}

// newReplicas starts n switches on the Redis at url, sharing one partner
// simulator whose customer app scans through the first (scanVia scans
// through any). Nodes are named replica-a, replica-b, …
func newReplicas(t *testing.T, url string, n int, opts ...HarnessOption) []*Harness {
	t.Helper()
	simURL, simCA, makeSim := startSim(t, t.TempDir(), 1500*time.Millisecond)
	hs := make([]*Harness, n)
	for i := range hs {
		cfg := testConfig(t.TempDir(), simURL, simCA)
		cfg.Store.URL = url
		o := Options{Node: fmt.Sprintf("replica-%c", 'a'+i), LateWindow: 2 * time.Second, SAFPoll: 50 * time.Millisecond, DrainTimeout: 5 * time.Second}
		for _, opt := range opts {
			opt(cfg, &o)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("test configuration invalid: %v", err)
		}
		hs[i] = &Harness{T: t, Cfg: cfg, SimURL: simURL, Logs: newSyncBuffer()}
		hs[i].start(o)
	}
	sim := makeSim(hs[0].Base, clientTLS(hs[0]))
	for _, h := range hs {
		h.Sim = sim
	}
	return hs
}

func clientTLS(h *Harness) *tls.Config { return h.Client.Transport.(*http.Transport).TLSClientConfig }

// scanVia has a customer app of wallet-a scan payload through the switch h.
func scanVia(h *Harness, payload string) (*electrumsim.ScanResult, error) {
	app := electrumsim.New(electrumsim.Config{PartnerID: "wallet-a", PartnerName: "Wallet A",
		SwitchURL: h.Base, ScanUsername: ScanUser, ScanPassword: ScanPass, SwitchTLS: clientTLS(h)})
	defer app.Close()
	res, err := app.Scan(context.Background(), electrumsim.ScanRequest{QrCode: payload, PartnerPaymentToken: "tok-secret-123456"})
	if err == nil {
		err = res.Err
	}
	return res, err
}

// TestReplicasActAsOneSwitch: a payment request held by one replica is
// woken by a scan that reaches another, and a scan held by one replica is
// taken by a payment request that reaches another, both through Redis
// pub/sub: the re-check that would catch a lost wake-up is off here, so
// only the wake-up can end the holds this soon.
func TestReplicasActAsOneSwitch(t *testing.T) {
	testReplicasActAsOneSwitch(t, redistest.Start(t).URL())
}

// TestClusterReplicasActAsOneSwitch: the same with the store on a Redis
// Cluster of three masters.
func TestClusterReplicasActAsOneSwitch(t *testing.T) {
	testReplicasActAsOneSwitch(t, redistest.StartCluster(t, 3, 0).URL())
}

func testReplicasActAsOneSwitch(t *testing.T, url string) {
	// A long wait: a replica woken at once answers long before half of it,
	// however loaded the machine; one that waited out the wait fails.
	const wait = 20 * time.Second
	hs := newReplicas(t, url, 2, func(c *config.Config, o *Options) {
		o.Recheck = time.Hour
		c.ScanWait, c.EarlyScanGrace = config.Duration(wait), config.OptDuration{Duration: config.Duration(wait), Set: true}
	})
	a, b := hs[0], hs[1]

	t.Run("ScanOnOtherReplica", func(t *testing.T) {
		tranID, payload := a.createQR(t)
		req := payRequest("1234", tranID, 1000)
		answer := a.payAsync(req)
		a.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
		start := time.Now()
		if res, err := scanVia(b, payload); err != nil || res.Status != 202 {
			t.Fatalf("scan on replica b = %+v, %v; want 202", res, err)
		}
		r := <-answer
		if r.status != 201 {
			t.Fatalf("pay on replica a = %d %s, want 201", r.status, r.body)
		}
		if took := time.Since(start); took > wait/2 {
			t.Errorf("replica a answered %v after the scan on b, want it woken at once (scan wait %v)", took, wait)
		}
		if st := b.story(t, req.ID); st.Payment == nil || st.Payment.State != "APPROVED" {
			t.Errorf("support on replica b sees %+v, want the APPROVED payment", st.Payment)
		}
	})

	t.Run("EarlyScanOnOtherReplica", func(t *testing.T) {
		tranID, payload := a.createQR(t)
		scanned := make(chan *electrumsim.ScanResult, 1)
		go func() {
			res, err := scanVia(b, payload)
			if err != nil {
				res = &electrumsim.ScanResult{Err: err}
			}
			scanned <- res
		}()
		eventually(t, "the early scan held on the QR code", func() bool {
			q, err := a.Srv.Store().QR(t.Context(), tranID)
			return err == nil && q.HeldScan != nil
		})
		start := time.Now()
		req := payRequest("1234", tranID, 1000)
		if r := <-a.payAsync(req); r.status != 201 {
			t.Fatalf("pay on replica a after an early scan on b = %d %s, want 201", r.status, r.body)
		}
		res := <-scanned
		if res.Err != nil || res.Status != 202 {
			t.Fatalf("early scan on replica b = %d %v %s, want 202", res.Status, res.Err, res.Body)
		}
		if took := time.Since(start); took > wait/2 {
			t.Errorf("replica b answered the early scan %v after the request reached a, want at once (grace %v)", took, wait)
		}
	})
}

// TestLostWakeUpIsCaughtByRecheck: when the wake-up is lost (the replicas'
// subscriptions are cut just before the scan), the held request still sees
// the scan within the re-check interval.
func TestLostWakeUpIsCaughtByRecheck(t *testing.T) {
	srv := redistest.Start(t)
	const recheck, wait = 300 * time.Millisecond, 30 * time.Second
	hs := newReplicas(t, srv.URL(), 2, func(c *config.Config, o *Options) {
		o.Recheck = recheck
		c.ScanWait = config.Duration(wait)
	})
	a, b := hs[0], hs[1]
	tranID, payload := a.createQR(t)
	req := payRequest("1234", tranID, 1000)
	answer := a.payAsync(req)
	a.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	// Drop every subscriber: the engines listen again after a second, so
	// the scan's wake-up, published now, reaches nobody.
	if err := srv.Client(t).Do(t.Context(), "client", "kill", "type", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if res, err := scanVia(b, payload); err != nil || res.Status != 202 {
		t.Fatalf("scan on replica b = %+v, %v; want 202", res, err)
	}
	if r := <-answer; r.status != 201 {
		t.Fatalf("pay on replica a = %d %s, want 201", r.status, r.body)
	}
	// Without the re-check the request would have waited out its scan
	// wait and failed NO_SCAN; the 201 says the re-check found the scan.
	if took := time.Since(start); took > wait/2 {
		t.Errorf("replica a answered %v after the scan, want within a re-check (%v), long before the scan wait (%v)", took, recheck, wait)
	}
}

// TestReplicasRefuseDuplicates: request ids and advice ids are unique across
// replicas, even when the same message reaches two of them at once.
func TestReplicasRefuseDuplicates(t *testing.T) {
	srv := redistest.Start(t)
	hs := newReplicas(t, srv.URL(), 2)
	a, b := hs[0], hs[1]
	wantDuplicate := func(t *testing.T, what string, r Response) {
		t.Helper()
		if r.status != 400 {
			t.Fatalf("%s = %d %s, want 400 DUPLICATE_RECORD", what, r.status, r.body)
		}
		if d := r.detail(t); d.ErrorType != wire.DuplicateRecord {
			t.Errorf("%s errorType = %s, want DUPLICATE_RECORD", what, d.ErrorType)
		}
	}

	qrReq := qrRequest("1234")
	if r := a.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrReq); r.status != 201 {
		t.Fatalf("createQrCode on a = %d %s", r.status, r.body)
	}
	wantDuplicate(t, "the same createQrCode on b", b.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrReq))

	req := a.approvedPayment(t, 1000)
	tranID, _ := b.createQR(t)
	again := *req
	again.TranID = tranID
	wantDuplicate(t, "a used payment request id on b", <-b.payAsync(&again))

	// The same new request on both replicas at once: one holds it, the
	// other refuses it at once.
	tranID, payload := a.createQR(t)
	twice := payRequest("1234", tranID, 1000)
	answers := []<-chan Response{a.payAsync(twice), b.payAsync(twice)}
	key := qrswitch.PaymentKey("shop-1", twice.ID)
	a.waitState(t, key, "AWAITING_SCAN")
	if res, err := scanVia(b, payload); err != nil || res.Status != 202 {
		t.Fatalf("scan = %+v, %v", res, err)
	}
	statuses := map[int]int{}
	for _, ch := range answers {
		r := <-ch
		statuses[r.status]++
		if r.status == 400 {
			wantDuplicate(t, "the request's twin", r)
		}
	}
	if statuses[201] != 1 || statuses[400] != 1 {
		t.Errorf("one payment request sent to two replicas at once got %v, want one 201 and one 400", statuses)
	}

	// An advice repeated on the other replica, and one sent to both at
	// once, get the same answer and reach the partner once.
	conf := confirmation(req.ID)
	first := a.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
	repeat := b.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, conf)
	if first.status != 202 || repeat.status != first.status || string(repeat.body) != string(first.body) {
		t.Errorf("confirmation on a = %d %s, repeated on b = %d %s; want the same 202", first.status, first.body, repeat.status, repeat.body)
	}
	rev := reversal(twice.ID, wire.ReasonCancelled)
	var wg sync.WaitGroup
	got := make([]Response, 2)
	for i, h := range hs {
		wg.Go(func() { got[i] = h.Post(t, "/qr/v1/payments/reversals", ShopUser, ShopPass, rev) })
	}
	wg.Wait()
	if got[0].status != 202 || got[1].status != 202 || string(got[0].body) != string(got[1].body) {
		t.Errorf("one reversal on both replicas at once = %d %s and %d %s; want the same 202", got[0].status, got[0].body, got[1].status, got[1].body)
	}
	a.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	a.waitState(t, key, "REVERSED")
	for _, id := range []string{conf.ID, rev.ID} {
		if e, ok := a.ledgerAdvice(id); !ok || e.Deliveries != 1 || !e.EffectApplied {
			t.Errorf("partner ledger of advice %s = %+v, want one delivery, applied", id, e)
		}
	}
}

// TestReplicaKilledHoldingLeases kills (SIGKILL) a replica while its advice
// sends hang at the partner, holding leases; the other replica takes every
// one of them over once its lease ends and delivers it, and the partner's
// ledger shows every confirmation captured and every reversal released
// exactly once.
func TestReplicaKilledHoldingLeases(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	simURL, simCA, makeSim := startSim(t, dir, 3*time.Second)

	// Replica a in a child process (its leases: 1 s timeout + 1 s late
	// window + 1 s margin), replica b in this one.
	cfgA := testConfig(filepath.Join(dir, "a"), simURL, simCA)
	cfgA.Store.URL = srv.URL()
	cfgA.Listen, cfgA.AdminListen = freePort(t), freePort(t)
	cfgFile := filepath.Join(dir, "a.yaml")
	yb, err := yaml.Marshal(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, yb, 0o600); err != nil {
		t.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	child := startChild(t, cfgFile, logs)
	tlsA, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: filepath.Join(dir, "a", "tls", "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	a := &Harness{T: t, Cfg: cfgA, Base: "https://" + child.addr,
		Client: &http.Client{Timeout: settle, Transport: &http.Transport{TLSClientConfig: tlsA}}}
	a.Sim = makeSim(a.Base, tlsA)

	cfgB := testConfig(filepath.Join(dir, "b"), simURL, simCA)
	cfgB.Store.URL = srv.URL()
	b := &Harness{T: t, Cfg: cfgB, SimURL: simURL, Logs: newSyncBuffer(), Sim: a.Sim}
	b.start(Options{Node: "replica-b", LateWindow: time.Second, SAFPoll: 50 * time.Millisecond, LeaseMargin: time.Second, DrainTimeout: 5 * time.Second})
	st := b.Srv.Store()

	const n = 9
	var reqs []*wire.PaymentRequest
	for i := range n {
		reqs = append(reqs, a.approvedPayment(t, int64(4000+i)))
	}
	if err := a.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.FaultHang}); err != nil {
		t.Fatal(err)
	}
	wantState := map[string]string{}
	for i, req := range reqs {
		h := []*Harness{a, b}[i%2]
		path, body, state := "/qr/v1/payments/confirmations", any(confirmation(req.ID)), "CONFIRMED"
		if i%3 == 0 {
			path, body, state = "/qr/v1/payments/reversals", reversal(req.ID, wire.ReasonCancelled), "REVERSED"
		}
		if r := h.Post(t, path, ShopUser, ShopPass, body); r.status != 202 {
			t.Fatalf("advice %d = %d %s, want 202", i, r.status, r.body)
		}
		wantState[req.ID] = state
	}
	// Wait until replica a holds leases on hanging sends.
	var heldByA []string
	eventually(t, "replica a holding advice leases", func() bool {
		leased, err := st.ListAdvices(t.Context(), qrswitch.AdviceQuery{State: qrswitch.AdvicePending, Leased: true})
		if err != nil {
			return false
		}
		heldByA = heldByA[:0]
		for _, adv := range leased {
			if adv.LeaseOwner != "replica-b" && adv.LeaseUntil.After(time.Now()) {
				heldByA = append(heldByA, adv.Key())
			}
		}
		return len(heldByA) >= 2
	})
	child.kill(t)
	a.Sim.ClearFaults()
	t.Logf("replica a killed holding the leases of %d advices", len(heldByA))

	for _, req := range reqs {
		b.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), wantState[req.ID])
	}
	for _, key := range heldByA {
		adv, err := st.Advice(t.Context(), key)
		if err != nil || adv.State != qrswitch.AdviceDone || adv.LeaseOwner != "" {
			t.Errorf("advice %s leased by the killed replica = %+v, %v; want DONE by replica b", key, adv, err)
		}
	}
	effects := map[string][]electrumsim.State{}
	for _, e := range a.Sim.Ledger().Advices {
		if e.EffectApplied {
			effects[e.RequestID] = append(effects[e.RequestID], e.Effect)
		}
	}
	for _, req := range reqs {
		want := electrumsim.StateCaptured
		if wantState[req.ID] == "REVERSED" {
			want = electrumsim.StateReleased
		}
		if got := effects[req.ID]; len(got) != 1 || got[0] != want {
			t.Errorf("payment %s: partner effects %v, want %s exactly once", req.ID, got, want)
		}
	}
}

// TestRedisDownAndBack stops Redis (SIGKILL; the AOF fsyncs every write)
// while retailers keep sending: every answer is either a real success or
// 503 UPSTREAM_UNAVAILABLE, /readyz says not ready, and when Redis is back
// the switch recovers by itself: every success answered before the outage
// is there, and the advices queued before it are delivered.
func TestRedisDownAndBack(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	h := NewHarness(t, onRedis(srv.URL()), func(_ *config.Config, o *Options) {
		// A send in flight when Redis went away cannot record its outcome:
		// it goes again when its lease ends.
		o.LeaseMargin = time.Second
	})
	var reqs []*wire.PaymentRequest
	for i := range 3 {
		reqs = append(reqs, h.approvedPayment(t, int64(5000+i)))
	}
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
		t.Fatal(err)
	}
	var confs []string
	for _, req := range reqs {
		c := confirmation(req.ID)
		confs = append(confs, c.ID)
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, c); r.status != 202 {
			t.Fatalf("confirm = %d %s", r.status, r.body)
		}
	}

	// Traffic: QR codes issued one after another through the outage.
	stop := make(chan struct{})
	var mu sync.Mutex
	var issued []string
	other := map[string]int{}
	var traffic sync.WaitGroup
	traffic.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"))
			mu.Lock()
			switch {
			case r.status == 201:
				var resp wire.CreateQrCodeResponse
				json.Unmarshal(r.body, &resp)
				issued = append(issued, resp.TranID)
			case r.status == 503 && strings.Contains(string(r.body), wire.UpstreamUnavailable):
				other["503 UPSTREAM_UNAVAILABLE"]++
			default:
				other[fmt.Sprintf("%d %s", r.status, r.body)]++
			}
			mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	})

	readyz := func() int {
		resp, err := http.Get("http://" + h.Srv.AdminAddr() + "/readyz")
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	time.Sleep(200 * time.Millisecond)
	srv.Kill()
	r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"))
	if r.status != 503 || r.detail(t).ErrorType != wire.UpstreamUnavailable {
		t.Errorf("createQrCode with Redis down = %d %s, want 503 UPSTREAM_UNAVAILABLE", r.status, r.body)
	}
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(reqs[0].ID)); r.status != 500 {
		t.Errorf("confirmation with Redis down = %d %s, want 500 (unknown: the POS repeats it)", r.status, r.body)
	}
	if code := readyz(); code != 503 {
		t.Errorf("/readyz with Redis down = %d, want 503", code)
	}
	time.Sleep(300 * time.Millisecond)

	srv.Restart()
	eventually(t, "/readyz ready again", func() bool { return readyz() == 200 })
	eventually(t, "QR codes issued again", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return other["503 UPSTREAM_UNAVAILABLE"] > 0 && len(issued) > 0 &&
			slices.Contains(issued, issued[len(issued)-1]) && h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")).status == 201
	})
	close(stop)
	traffic.Wait()
	for k, n := range other {
		if k != "503 UPSTREAM_UNAVAILABLE" {
			t.Errorf("%d answers %q during the outage, want only 201 or 503 UPSTREAM_UNAVAILABLE", n, k)
		}
	}
	for _, tranID := range issued {
		if _, err := h.Srv.Store().QR(t.Context(), tranID); err != nil {
			t.Errorf("QR code %s was answered 201 but is not stored after the outage: %v", tranID, err)
		}
	}
	t.Logf("during the outage: %d QR codes issued, %d answered 503", len(issued), other["503 UPSTREAM_UNAVAILABLE"])

	h.Sim.ClearFaults()
	for i, req := range reqs {
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
		if e, ok := h.ledgerAdvice(confs[i]); !ok || !e.EffectApplied || e.Effect != electrumsim.StateCaptured {
			t.Errorf("confirmation %s in the partner's ledger = %+v, want captured", confs[i], e)
		}
	}
}

// TestSentinelFailover: with wait_replicas 1, every advice answered 202 is
// on the replica, so killing the master loses none of them; while the
// promoted master has no replica the switch answers 503 rather than promise
// a copy it cannot make, and once the old master is back as a replica it
// works again and delivers every advice.
func TestSentinelFailover(t *testing.T) {
	topo := redistest.StartSentinel(t)
	old := topo.Master
	var promoted *redistest.Server
	failoverUnderAdvices(t, topo.URL(), func() {
		old.Kill()
		promoted = topo.WaitFailover(old.Addr())
	}, func() {
		old.RestartAsReplicaOf(promoted)
		topo.WaitReplicaOf(old, promoted)
	})
}

// TestClusterFailover: the same with the store on a Redis Cluster (three
// masters, a replica each), whose master serving the store's slot is
// killed; back with its nodes.conf, it rejoins as the promoted one's
// replica.
func TestClusterFailover(t *testing.T) {
	c := redistest.StartCluster(t, 3, 1)
	var old *redistest.Server
	failoverUnderAdvices(t, c.URL(), func() {
		prefix, err := redisstore.ClusterPrefix(redisstore.DefaultPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if old, err = c.MasterOf(t.Context(), prefix); err != nil {
			t.Fatal(err)
		}
		old.Kill()
		c.WaitOK() // its replica took over, and every node knows
	}, func() {
		old.Restart()
		c.WaitOK()
	})
}

// failoverUnderAdvices runs a switch on the Redis store at url with
// wait_replicas 1, queues confirmations its partner refuses, then calls
// failover (kill the master; return once a replica took over) and rejoin
// (the old master back as a replica): in between, writes are refused (503);
// afterwards the switch works again and every queued confirmation is
// delivered and captured.
func failoverUnderAdvices(t *testing.T, url string, failover, rejoin func()) {
	h := NewHarness(t, func(c *config.Config, o *Options) {
		c.Store.URL = url
		c.Store.WaitReplicas = 1
		// WAIT returns as soon as the replica acknowledges; the timeout
		// only ends the wait for a replica that is not there (after the
		// failover), so it is long: a loaded machine's replica may take
		// more than half a second (a 500 ms timeout failed a clean-clone CI
		// run at its very first createQrCode).
		c.Store.WaitTimeout = config.Duration(5 * time.Second)
		// A send in flight at the kill cannot record its outcome: it goes
		// again when its lease ends.
		o.LeaseMargin = time.Second
	})
	var reqs []*wire.PaymentRequest
	for i := range 4 {
		reqs = append(reqs, h.approvedPayment(t, int64(6000+i)))
	}
	if err := h.Sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500}); err != nil {
		t.Fatal(err)
	}
	for _, req := range reqs {
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID)); r.status != 202 {
			t.Fatalf("confirm = %d %s", r.status, r.body)
		}
	}

	failover()
	if r := h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")); r.status != 503 {
		t.Errorf("createQrCode while the new master has no replica = %d %s, want 503", r.status, r.body)
	}
	rejoin()
	eventually(t, "QR codes issued after the failover", func() bool {
		return h.Post(t, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234")).status == 201
	})

	h.Sim.ClearFaults()
	for _, req := range reqs {
		h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	}
	req := h.approvedPayment(t, 6100)
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID)); r.status != 202 {
		t.Fatalf("confirm after the failover = %d %s", r.status, r.body)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "CONFIRMED")
	for _, e := range h.Sim.Ledger().Advices {
		if e.Deliveries > 0 && e.EffectApplied && e.Effect != electrumsim.StateCaptured {
			t.Errorf("advice %s effect %s, want captured", e.ID, e.Effect)
		}
	}
}

// TestRoundTripsPerFlowStep measures the round trips to Redis of each step
// of one payment flow through a whole switch (background work — recovery
// scans, the janitor — left out) and logs them (go test -v).
func TestRoundTripsPerFlowStep(t *testing.T) {
	srv := redistest.Start(t)
	h := NewHarness(t, onRedis(srv.URL()), func(_ *config.Config, o *Options) {
		o.Recheck, o.SAFPoll = time.Hour, time.Hour // only wake-ups: no polling in the figures
	})
	st := h.Srv.Store().(*redisstore.Store)
	obs, err := redisstore.Open(t.Context(), srv.URL(), redisstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	waitState := func(key, state string) {
		eventually(t, key+" "+state, func() bool {
			p, err := obs.Payment(t.Context(), key)
			return err == nil && string(p.State) == state
		})
	}
	// Each advice queue claims once as it starts; on a loaded machine that
	// can come late, inside the first step. Wait for those claims first.
	queues, err := h.Srv.Engine().Queues(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "every advice queue's first claim", func() bool { return st.Stats()["ClaimAdvices"] >= int64(len(queues)) })
	background := map[string]bool{"Orphans": true, "Sweep": true, "Ping": true}
	var rows []string
	total := 0
	step := func(name string, max int, do func()) {
		before := st.Stats()
		do()
		after := st.Stats()
		n := 0
		var parts []string
		for _, op := range slices.Sorted(maps.Keys(after)) {
			if d := after[op] - before[op]; d > 0 && !background[op] {
				n += int(d)
				parts = append(parts, fmt.Sprintf("%s %d", op, d))
			}
		}
		total += n
		rows = append(rows, fmt.Sprintf("%-56s %2d  (%s)", name, n, strings.Join(parts, ", ")))
		if n > max {
			t.Errorf("%s took %d round trips, want at most %d: %s", name, n, max, strings.Join(parts, ", "))
		}
	}
	var tranID, payload string
	step("createQrCode → 201", 1, func() { tranID, payload = h.createQR(t) })
	req := payRequest("1234", tranID, 1000)
	key := qrswitch.PaymentKey("shop-1", req.ID)
	var answer <-chan Response
	step("pay: stored and held (AWAITING_SCAN)", 2, func() {
		answer = h.payAsync(req)
		waitState(key, "AWAITING_SCAN")
	})
	step("notifyScan → 202, forward, partner approves, pay → 201", 8, func() {
		if res := h.scan(t, payload); res.Status != 202 {
			t.Fatalf("scan = %d", res.Status)
		}
		if r := <-answer; r.status != 201 {
			t.Fatalf("pay = %d %s", r.status, r.body)
		}
	})
	// The SAF worker is woken by the confirmation's commit and may send it
	// before the 202 is read: one step.
	step("confirmPayment → 202; SAF sends it; CONFIRMED", 7, func() {
		if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(req.ID)); r.status != 202 {
			t.Fatalf("confirm = %d %s", r.status, r.body)
		}
		waitState(key, "CONFIRMED")
	})
	t.Logf("round trips to Redis per step of one payment flow:\n%s\n%-44s %2d", strings.Join(rows, "\n"), "total", total)
}

// TestNoScanOutlastsAStoreOutage: the scan window of a held request closes
// while Redis is away; the switch keeps trying to record NO_SCAN and, once
// Redis is back within the hold's margin, answers the retailer a definite
// 400 NO_SCAN_RECEIVED rather than 504 "outcome unknown".
func TestNoScanOutlastsAStoreOutage(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	// Short pauses: the switch tries more times than its floor (32) well
	// before the hold's margin runs out, so Redis is restarted only once
	// the switch is past the point where it used to give up.
	h := NewHarness(t, onRedis(srv.URL()), func(c *config.Config, o *Options) {
		c.ScanWait = config.Duration(time.Second)
		o.StorePause = 10 * time.Millisecond
	})
	tranID, _ := h.createQR(t)
	req := payRequest("1234", tranID, 1000)
	answer := h.payAsync(req)
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "AWAITING_SCAN")
	srv.Kill()
	eventually(t, "the switch failing to record NO_SCAN more than 32 times", func() bool {
		return h.counter(t, "qrswitch_store_errors_total", map[string]string{"operation": "Commit", "error": "unavailable"}) > 32
	})
	srv.Restart()
	r := <-answer
	if r.status != 400 || !strings.Contains(string(r.body), wire.NoScanReceived) {
		t.Fatalf("pay after the store came back = %d %s, want 400 %s", r.status, r.body, wire.NoScanReceived)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", req.ID), "NO_SCAN")
}

// TestApprovalOutlastsAStoreOutage: the partner approves while Redis is
// away (an amount ending in 70: the simulator answers after 1.5 s, inside
// the 30 s timeout given here); the switch keeps trying to store the
// approval and, once Redis is back, answers the retailer 201 rather than
// 504 "outcome unknown" followed by a reversal of money the customer paid.
func TestApprovalOutlastsAStoreOutage(t *testing.T) {
	srv := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	h := NewHarness(t, onRedis(srv.URL()), func(c *config.Config, o *Options) {
		c.Partners[0].Timeout = config.Duration(30 * time.Second)
		o.StorePause = 10 * time.Millisecond // see TestNoScanOutlastsAStoreOutage
	})
	tranID, payload := h.createQR(t)
	req := payRequest("1234", tranID, 1070)
	key := qrswitch.PaymentKey("shop-1", req.ID)
	answer := h.payAsync(req)
	h.waitState(t, key, "AWAITING_SCAN")
	if res := h.scan(t, payload); res.Status != 202 {
		t.Fatalf("scan = %d %s", res.Status, res.Body)
	}
	h.waitState(t, key, "FORWARDED")
	srv.Kill()
	eventually(t, "the switch failing to store the approval more than 32 times", func() bool {
		return h.counter(t, "qrswitch_store_errors_total", map[string]string{"operation": "Commit", "error": "unavailable"}) > 32
	})
	srv.Restart()
	if r := <-answer; r.status != 201 {
		t.Fatalf("pay after the store came back = %d %s, want 201", r.status, r.body)
	}
	h.waitState(t, key, "APPROVED")
}

// TestShardedReplicasActAsOneSwitch is the same on a store spread over
// sixteen shards of the cluster: each payment's records are in its
// retailer's shard, and searches, claims and recovery visit every shard.
func TestShardedReplicasActAsOneSwitch(t *testing.T) {
	testReplicasActAsOneSwitch(t, redistest.StartCluster(t, 3, 0).URL()+"?shards=16")
}

// TestShardedSwitchMakesPlacedTranIDs: the tranIds of a switch on a
// sharded store hash to their retailer's shard, so that any process reads
// the QR code in one round trip, rather than looking for it in every shard
// (which a master failing over anywhere in the cluster would fail).
func TestShardedSwitchMakesPlacedTranIDs(t *testing.T) {
	url := redistest.StartCluster(t, 3, 0).URL() + "?shards=16"
	h := NewHarness(t, func(c *config.Config, o *Options) { c.Store.URL = url })
	probe, err := redisstore.Open(t.Context(), url, redisstore.Options{JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for range 5 {
		tranID, _ := h.createQR(t)
		before := probe.RoundTrips()
		if q, err := probe.QR(t.Context(), tranID); err != nil || q.RetailerID != "shop-1" {
			t.Fatalf("QR(%s) = %v, %v", tranID, q, err)
		}
		if n := probe.RoundTrips() - before; n != 1 {
			t.Fatalf("reading the switch's QR code %s from another process took %d round trips, want 1", tranID, n)
		}
	}
}

// TestShardedStoreRefusesRailsWithRecords: a rail that does not say it
// keeps to a sharded store's rules (partners.ShardSafe) cannot run on one;
// the switch says so at start rather than failing each payment. Electrum
// alone starts.
func TestShardedStoreRefusesRailsWithRecords(t *testing.T) {
	dir := t.TempDir()
	simURL, simCA, _ := startSim(t, dir, 0)
	url := redistest.StartCluster(t, 3, 0).URL() + "?shards=4"
	// A rail like the fake, without its ShardSafe: an embedded interface
	// has only the interface's methods.
	type unsafeRail struct{ partners.Rail }
	partners.RegisterForTest(t, "test-unsafe", func(c partners.Config) (partners.Rail, error) {
		r, err := (&railtest.Fake{}).New(c)
		return unsafeRail{r}, err
	})
	cfg := testConfig(dir, simURL, simCA)
	cfg.Store.URL = url
	cfg.Partners = append(cfg.Partners, config.Partner{ID: "unsafe", Name: "Unsafe", Rail: "test-unsafe", Timeout: config.Duration(time.Second)})
	if _, err := New(t.Context(), cfg, zerolog.Nop(), Options{}); err == nil || !strings.Contains(err.Error(), "shards") {
		t.Fatalf("New with a rail that is not ShardSafe on 4 shards = %v, want a refusal naming shards", err)
	}
	cfg = testConfig(dir, simURL, simCA)
	cfg.Store.URL = url
	srv, err := New(t.Context(), cfg, zerolog.Nop(), Options{})
	if err != nil {
		t.Fatalf("New with Electrum partners on 4 shards = %v", err)
	}
	srv.close()
}
