package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
	"github.com/qrswitch/qrswitch/internal/wire"
	"github.com/qrswitch/qrswitch/partners/electrum/electrumsim"
	redisstore "github.com/qrswitch/qrswitch/store/redis"
	"github.com/qrswitch/qrswitch/store/redis/redistest"
	qrswitch "github.com/qrswitch/qrswitch/switch"
	tlsconfig "github.com/qrswitch/qrswitch/tls"
)

// The crash soak: retailers run many payment flows (approvals, declines,
// partner errors and timeouts, late and dropped answers, voids, POS
// reversals after a lost answer) against switch processes that are killed
// with SIGKILL again and again, while faults hit the partner and the
// network between. When the traffic stops, a reconciliation compares what
// the switch recorded, what every retailer was told, and the partner's
// ledger, and counts every broken invariant.
//
// The default run is short (a few seconds, a few kills). A long run:
//
//	QRSWITCH_SOAK=10m go test ./server -run Soak -v -timeout 30m
//
// QRSWITCH_SOAK_WORKERS sets the number of concurrent POS flows (default 6).

// soakSettings are the knobs of one soak run.
type soakSettings struct {
	duration  time.Duration // traffic time
	workers   int           // concurrent POS flows
	killEvery [2]time.Duration
	faultGap  [2]time.Duration
	long      bool
}

func soakFromEnv(t *testing.T) soakSettings {
	s := soakSettings{
		duration:  5 * time.Second,
		workers:   6,
		killEvery: [2]time.Duration{1500 * time.Millisecond, 2500 * time.Millisecond},
		faultGap:  [2]time.Duration{300 * time.Millisecond, time.Second},
	}
	if v := os.Getenv("QRSWITCH_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("QRSWITCH_SOAK=%q: %v", v, err)
		}
		s.duration, s.long = d, true
		s.killEvery = [2]time.Duration{10 * time.Second, 30 * time.Second}
	}
	if v := os.Getenv("QRSWITCH_SOAK_WORKERS"); v != "" {
		if _, err := fmt.Sscan(v, &s.workers); err != nil || s.workers < 1 {
			t.Fatalf("QRSWITCH_SOAK_WORKERS=%q: want a positive number", v)
		}
	}
	return s
}

func between(rng *rand.Rand, r [2]time.Duration) time.Duration {
	return r[0] + time.Duration(rng.Int64N(int64(r[1]-r[0])+1))
}

// soakCluster is the switch processes under test and how to hurt them.
type soakCluster struct {
	t       *testing.T
	cfgFile string
	logs    *os.File
	addrs   []string // one listener per replica, stable across restarts
	mu      sync.Mutex
	kids    []*child
	kills   atomic.Int64
	// chaos, when set, is called by the chaos loop besides killing
	// replicas (the Redis variant restarts Redis); it returns what it did.
	chaos func(rng *rand.Rand) string
}

// restart kills replica i with SIGKILL and starts it again on the same
// store and address.
func (c *soakCluster) restart(i int, pause time.Duration) {
	c.mu.Lock()
	k := c.kids[i]
	c.mu.Unlock()
	k.kill(c.t)
	c.kills.Add(1)
	time.Sleep(pause)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.kids[i] = c.start(i)
}

func (c *soakCluster) start(i int) *child {
	k := startChild(c.t, c.cfgFileFor(i), c.logs)
	if k.addr != c.addrs[i] {
		c.t.Fatalf("replica %d listens on %s, want %s", i, k.addr, c.addrs[i])
	}
	return k
}

func (c *soakCluster) cfgFileFor(i int) string {
	if i == 0 {
		return c.cfgFile
	}
	return fmt.Sprintf("%s.%d", c.cfgFile, i)
}

// newSoakCluster writes one configuration per replica (listeners on fixed
// free ports, the partner reached through lane) and starts them.
func newSoakCluster(t *testing.T, dir string, cfg *config.Config, replicas int) *soakCluster {
	t.Helper()
	logs, err := os.Create(filepath.Join(dir, "switch.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logs.Close() })
	c := &soakCluster{t: t, cfgFile: filepath.Join(dir, "qrswitch.yaml"), logs: logs}
	for i := range replicas {
		rc := *cfg
		rc.Listen, rc.AdminListen = freePort(t), freePort(t)
		c.addrs = append(c.addrs, rc.Listen)
		b, err := yaml.Marshal(&rc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(c.cfgFileFor(i), b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.kids = append(c.kids, c.start(i))
	}
	return c
}

// soakFlow is one POS flow as the retailer saw it.
type soakFlow struct {
	requestID string
	amount    int64
	scanned   bool
	// payStatus is the answer to the payment request; -1 when none came
	// (the switch died holding it).
	payStatus    int
	payErrorType string
	// advice is what the POS sent afterwards: "confirm", "void" (a
	// cancelled sale), "reverse" (after a lost or unknown answer), or "".
	advice       string
	adviceID     string
	adviceStatus int // the answer that ended the POS's retries
}

// soakPOS drives flows against the replicas, one POS terminal per worker.
type soakPOS struct {
	t      *testing.T
	c      *soakCluster
	sim    *electrumsim.Sim
	client *http.Client
	stop   atomic.Bool // set when the POS must stop retrying (the test gives up)
}

// amounts the soak pays, weighted: mostly approvals, and every partner
// behaviour that ends otherwise (see electrumsim.Behaviours).
var soakAmounts = []struct {
	digits int64
	weight int
}{
	{1, 50}, {50, 5}, {51, 4}, {52, 3}, {55, 2}, {56, 2}, {60, 3}, {61, 2}, {63, 2}, {64, 4},
	{70, 3}, {71, 3}, {72, 3}, {73, 3},
}

func pickAmount(rng *rand.Rand) int64 {
	total := 0
	for _, a := range soakAmounts {
		total += a.weight
	}
	n := rng.IntN(total)
	for _, a := range soakAmounts {
		if n < a.weight {
			return 1000 + a.digits + 100*rng.Int64N(50)
		}
		n -= a.weight
	}
	panic("unreachable")
}

// post sends one message to replica i and returns the status (-1 when no
// answer arrived) and body.
func (p *soakPOS) post(i int, path, user, pass string, msg any) (int, []byte) {
	b, _ := json.Marshal(msg)
	req, _ := http.NewRequest(http.MethodPost, "https://"+p.c.addrs[i]+path, strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(user, pass)
	resp, err := p.client.Do(req)
	if err != nil {
		return -1, []byte(err.Error())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return -1, []byte(err.Error())
	}
	return resp.StatusCode, body
}

// deliver repeats an advice, with the same id, until the switch gives an
// answer that ends it — a final one in the interface's terms: anything but
// no answer, 500 or 504 — as a POS's own store-and-forward does.
func (p *soakPOS) deliver(rng *rand.Rand, path string, msg any) int {
	for {
		status, _ := p.post(rng.IntN(len(p.c.addrs)), path, ShopUser, ShopPass, msg)
		unknown := status == -1 || status == http.StatusInternalServerError || status == http.StatusGatewayTimeout
		if !unknown || p.stop.Load() {
			return status
		}
		time.Sleep(50*time.Millisecond + time.Duration(rng.IntN(100))*time.Millisecond)
	}
}

// flow runs one payment from QR code to the POS's last advice.
func (p *soakPOS) flow(rng *rand.Rand) (*soakFlow, bool) {
	replica := rng.IntN(len(p.c.addrs))
	status, body := p.post(replica, "/qr/v1/qrCodes", ShopUser, ShopPass, qrRequest("1234"))
	if status != http.StatusCreated {
		if status != -1 && status != http.StatusServiceUnavailable {
			p.t.Errorf("createQrCode = %d %s", status, body)
		}
		time.Sleep(50 * time.Millisecond) // the switch is restarting
		return nil, false
	}
	var qrResp wire.CreateQrCodeResponse
	json.Unmarshal(body, &qrResp)
	f := &soakFlow{amount: pickAmount(rng), scanned: rng.IntN(100) >= 3}
	req := payRequest("1234", qrResp.TranID, f.amount)
	f.requestID = req.ID
	answer := make(chan [2]any, 1)
	go func() {
		s, b := p.post(replica, "/qr/v1/payments", ShopUser, ShopPass, req)
		answer <- [2]any{s, b}
	}()
	if f.scanned {
		time.Sleep(time.Duration(10+rng.IntN(40)) * time.Millisecond)
		p.sim.Scan(context.Background(), electrumsim.ScanRequest{QrCode: qrResp.QrCode, PartnerPaymentToken: "soak-token-0123456789"})
	}
	a := <-answer
	f.payStatus = a[0].(int)
	if f.payStatus >= 400 {
		var d wire.ErrorDetail
		json.Unmarshal(a[1].([]byte), &d)
		f.payErrorType = d.ErrorType
	}
	switch {
	case f.payStatus == http.StatusCreated && rng.IntN(4) == 0:
		f.advice = "void"
	case f.payStatus == http.StatusCreated:
		f.advice = "confirm"
	case f.payStatus == -1, f.payStatus == http.StatusGatewayTimeout && rng.IntN(2) == 0:
		f.advice = "reverse" // the POS does not know, or was told unknown
	case f.payStatus >= 400 && rng.IntN(10) == 0:
		f.advice = "void" // a declined sale voided all the same
	}
	switch f.advice {
	case "confirm":
		c := confirmation(req.ID)
		f.adviceID = c.ID
		f.adviceStatus = p.deliver(rng, "/qr/v1/payments/confirmations", c)
	case "void", "reverse":
		reason := wire.ReasonCancelled
		if f.advice == "reverse" {
			reason = wire.ReasonTimeout
		}
		r := reversal(req.ID, reason)
		f.adviceID = r.ID
		f.adviceStatus = p.deliver(rng, "/qr/v1/payments/reversals", r)
	}
	return f, true
}

// soakFaults hurts the partner and the network between for short spells.
type soakFaults struct {
	sim    *electrumsim.Sim
	lane   *lane
	mu     sync.Mutex
	counts map[string]int
}

func (s *soakFaults) inject(t *testing.T, rng *rand.Rand) {
	var name string
	spell := time.Duration(200+rng.IntN(500)) * time.Millisecond
	switch rng.IntN(9) {
	case 0:
		name = "partner 500 on advices"
		s.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.Fault500, Count: 1 + rng.IntN(8)})
	case 1:
		name = "partner 504 on payments"
		s.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpPay, Fault: electrumsim.Fault504, Count: 1 + rng.IntN(3)})
	case 2:
		name = "partner drops advices after reading"
		s.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAdvice, Fault: electrumsim.FaultDrop, Count: 1 + rng.IntN(4)})
	case 3:
		name = "partner hangs past the timeout"
		s.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpAll, Fault: electrumsim.FaultHang, Count: 1 + rng.IntN(2)})
	case 4:
		name = "partner drops payments after reading"
		s.sim.SetFault(electrumsim.Fault{Operation: electrumsim.OpPay, Fault: electrumsim.FaultDrop, Count: 1})
	case 5:
		name = "connections reset"
		s.lane.poison(t, `{"name":"reset","type":"reset_peer","stream":"upstream","attributes":{"timeout":0}}`)
	case 6:
		name = "connections refused"
		s.lane.stop()
	case 7:
		name = "network latency"
		s.lane.poison(t, `{"name":"slow","type":"latency","stream":"downstream","attributes":{"latency":300,"jitter":200}}`)
	case 8:
		name = "network stall"
		s.lane.poison(t, `{"name":"stall","type":"timeout","stream":"upstream","attributes":{"timeout":0}}`)
	}
	s.mu.Lock()
	s.counts[name]++
	s.mu.Unlock()
	time.Sleep(spell)
	s.sim.ClearFaults()
	s.lane.heal(t)
}

func (s *soakFaults) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.counts {
		n += c
	}
	return n
}

func TestCrashSoak(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runSoak(t, dir, soakFromEnv(t), "sqlite://"+filepath.Join(dir, "qrswitch.db"), 1, nil, nil)
}

// TestCrashSoakRedis is the soak on the production backend: two switch
// replicas share one Redis (appendfsync always, so what Redis
// acknowledged survives its own crash); the chaos kills either replica
// and also kills Redis itself and starts it again.
func TestCrashSoakRedis(t *testing.T) {
	t.Parallel()
	rs := redistest.StartWith(t, redistest.Options{AppendFsync: "always"})
	runSoak(t, t.TempDir(), soakFromEnv(t), rs.URL(), 2, nil, func(c *soakCluster) {
		c.chaos = func(rng *rand.Rand) string {
			rs.Kill()
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
			rs.Restart()
			return "Redis killed and restarted"
		}
	})
}

// TestCrashSoakCluster is the soak on a Redis Cluster (three masters, a
// replica each, every write waiting for one replica): the chaos kills
// either switch replica, or the master serving the store's slot, which its
// replica replaces; the old master is started again once the cluster has
// moved on, and rejoins as a replica (until then the new master has none,
// and the switches answer 503 rather than promise a copy they cannot make).
func TestCrashSoakCluster(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, 1)
	prefix, err := redisstore.ClusterPrefix(redisstore.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	wait := func(c *config.Config) {
		c.Store.WaitReplicas = 1
		c.Store.WaitTimeout = config.Duration(time.Second)
	}
	runSoak(t, t.TempDir(), soakFromEnv(t), cl.URL(), 2, wait, func(c *soakCluster) {
		c.chaos = func(rng *rand.Rand) string {
			master, err := cl.MasterOf(context.Background(), prefix)
			if err != nil {
				t.Errorf("finding the store's master: %v", err)
				return "no master found"
			}
			master.Kill()
			cl.WaitOK()
			master.Restart()
			cl.WaitOK()
			return "the store's master killed, its replica promoted, the old one back as a replica"
		}
	})
}

// TestCrashSoakSharded is the cluster soak on a store spread over eight
// shards: the chaos kills, in turn, the master of the shard holding the
// soak's retailer and another master (of other shards), while claims,
// orphan recovery and the janitor visit every shard.
func TestCrashSoakSharded(t *testing.T) {
	t.Parallel()
	cl := redistest.StartCluster(t, 3, 1)
	url := cl.URL() + "?shards=8"
	probe, err := redisstore.Open(t.Context(), url, redisstore.Options{JanitorInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	prefix := probe.ShardPrefix("shop-1")
	probe.Close()
	wait := func(c *config.Config) {
		c.Store.WaitReplicas = 1
		c.Store.WaitTimeout = config.Duration(time.Second)
	}
	runSoak(t, t.TempDir(), soakFromEnv(t), url, 2, wait, func(c *soakCluster) {
		turn := 0
		c.chaos = func(rng *rand.Rand) string {
			turn++
			master, err := cl.MasterOf(context.Background(), prefix)
			if err != nil {
				t.Errorf("finding the master of shop-1's shard: %v", err)
				return "no master found"
			}
			what := "the master of shop-1's shard"
			if turn%2 == 0 {
				var others []*redistest.Server
				for _, n := range cl.Nodes {
					if role, _, _, err := cl.Role(context.Background(), n); err == nil && role == "master" && n != master {
						others = append(others, n)
					}
				}
				if len(others) == 0 {
					t.Errorf("no master other than shop-1's")
					return "no other master found"
				}
				master, what = others[rng.IntN(len(others))], "another master"
			}
			master.Kill()
			cl.WaitOK()
			master.Restart()
			cl.WaitOK()
			return what + " killed, its replica promoted, the old one back as a replica"
		}
	})
}

// runSoak runs the soak against replicas switch processes sharing the
// store at storeURL. configure, when not nil, changes their configuration;
// prepare, when not nil, is called with the cluster before the traffic
// starts (to add backend chaos).
func runSoak(t *testing.T, dir string, s soakSettings, storeURL string, replicas int, configure func(*config.Config), prepare func(*soakCluster)) {
	start := time.Now()
	partner, simURL, simCA := startPartner(t, dir)
	tp := newToxiproxy()
	simAddr := strings.TrimPrefix(simURL, "https://")
	l := &lane{id: "soak", upstream: simAddr, proxy: newLaneProxy(t, tp, "soak", simAddr)}
	cfg := testConfig(dir, "https://"+l.proxy.Listen, simCA)
	cfg.Store.URL = storeURL
	cfg.ScanWait = config.Duration(1500 * time.Millisecond)
	cfg.Partners = cfg.Partners[:1]
	if configure != nil {
		configure(cfg)
	}
	c := newSoakCluster(t, dir, cfg, replicas)
	if prepare != nil {
		prepare(c)
	}
	clientTLS, err := tlsconfig.NewClient(tlsconfig.ClientOptions{CAFile: filepath.Join(dir, "tls", "ca.pem")})
	if err != nil {
		t.Fatal(err)
	}
	pos := &soakPOS{t: t, c: c, client: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 64}}}
	pos.sim = partner.attach(t, "https://"+c.addrs[0], clientTLS)
	faults := &soakFaults{sim: pos.sim, lane: l, counts: map[string]int{}}

	// Traffic, faults and kills until the time is up.
	ctx, stopTraffic := context.WithTimeout(context.Background(), s.duration)
	defer stopTraffic()
	var (
		mu    sync.Mutex
		flows []*soakFlow
		wg    sync.WaitGroup
	)
	for w := range s.workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			for ctx.Err() == nil {
				if f, ok := pos.flow(rng); ok {
					mu.Lock()
					flows = append(flows, f)
					mu.Unlock()
				}
			}
		})
	}
	var chaos sync.WaitGroup
	chaosLog := map[string]int{}
	chaos.Go(func() {
		rng := rand.New(rand.NewPCG(7, uint64(start.UnixNano())))
		events := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(between(rng, s.killEvery)):
			}
			if events++; c.chaos != nil && events%2 == 0 {
				chaosLog[c.chaos(rng)]++
				continue
			}
			c.restart(rng.IntN(replicas), time.Duration(rng.IntN(300))*time.Millisecond)
		}
	})
	chaos.Go(func() {
		rng := rand.New(rand.NewPCG(11, uint64(start.UnixNano())))
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(between(rng, s.faultGap)):
			}
			faults.inject(t, rng)
		}
	})
	chaos.Wait()
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(2 * time.Minute):
		pos.stop.Store(true)
		t.Error("POS flows still retrying 2 minutes after the traffic stopped")
		<-drained
	}
	traffic := time.Since(start)

	// Quiescence: every payment the switch holds reaches a final state
	// and every advice a final outcome.
	stories := map[string]*qrswitch.Story{}
	quiet := time.Now().Add(30 * time.Second)
	if s.long {
		quiet = time.Now().Add(5 * time.Minute)
	}
	for {
		pending := 0
		for _, f := range flows {
			if st := stories[f.requestID]; st != nil && settled(st) {
				continue
			}
			st, found := pos.story(f.requestID)
			if !found {
				delete(stories, f.requestID)
				continue
			}
			stories[f.requestID] = st
			if !settled(st) {
				pending++
			}
		}
		if pending == 0 || time.Now().After(quiet) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}

	v := reconcile(flows, stories, pos.sim.Ledger())
	v.flows, v.kills, v.faults, v.chaos = len(flows), int(c.kills.Load()), faults.total(), chaosLog
	v.duration, v.traffic = time.Since(start), traffic
	v.report(t, faults.counts)
	for _, msg := range v.violations {
		t.Error(msg)
	}
	if len(v.violations) > 0 {
		t.Logf("switch logs: %s", c.logs.Name())
	}
	if v.flows < s.workers || v.kills < 1 {
		t.Errorf("the soak ran %d flows and %d kills; the run proves nothing", v.flows, v.kills)
	}
}

// story reads a payment's story through the support API of any replica;
// found is false when no replica knows the request id.
func (p *soakPOS) story(requestID string) (*qrswitch.Story, bool) {
	for range 50 {
		for i := range p.c.addrs {
			req, _ := http.NewRequest(http.MethodGet, "https://"+p.c.addrs[i]+"/support/v1/transactions/"+requestID, nil)
			req.SetBasicAuth(SupUser, SupPass)
			resp, err := p.client.Do(req)
			if err != nil {
				continue
			}
			var out struct{ Results []qrswitch.Story }
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusNotFound:
				return nil, false
			case resp.StatusCode == http.StatusOK && err == nil:
				for _, st := range out.Results {
					if st.Payment != nil && st.Payment.RequestID == requestID {
						return &st, true
					}
				}
				return nil, false
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, false
}

// settled reports whether a payment and all its advices are final.
func settled(st *qrswitch.Story) bool {
	if st.Payment == nil || !st.Payment.State.Final() {
		return false
	}
	for _, a := range st.Advices {
		if a.State != qrswitch.AdviceDone && a.State != qrswitch.AdviceMerged {
			return false
		}
	}
	return true
}

// soakVerdict is what a soak counted and found.
type soakVerdict struct {
	flows, kills, faults int
	chaos                map[string]int
	duration, traffic    time.Duration
	payAnswers           map[string]int
	states               map[string]int
	advices              map[string]int
	ledger               electrumsim.Totals
	violations           []string
}

func (v *soakVerdict) fail(format string, args ...any) {
	v.violations = append(v.violations, fmt.Sprintf(format, args...))
}

// reconcile checks the invariants of the switch against what the POS was
// told and what the partner did.
func reconcile(flows []*soakFlow, stories map[string]*qrswitch.Story, ledger electrumsim.Ledger) *soakVerdict {
	v := &soakVerdict{payAnswers: map[string]int{}, states: map[string]int{}, advices: map[string]int{}, ledger: ledger.Totals}
	lpay := map[string]electrumsim.PaymentEntry{}
	for _, p := range ledger.Payments {
		lpay[p.ID] = p
	}
	ladv := map[string][]electrumsim.AdviceEntry{}
	for _, a := range ledger.Advices {
		ladv[a.RequestID] = append(ladv[a.RequestID], a)
	}
	known := map[string]bool{}
	for _, f := range flows {
		known[f.requestID] = true
		answer := fmt.Sprint(f.payStatus)
		if f.payStatus == -1 {
			answer = "none (switch killed)"
		}
		v.payAnswers[answer]++
		if f.advice != "" {
			v.advices[f.advice+" "+fmt.Sprint(f.adviceStatus)]++
		}
		st := stories[f.requestID]
		lp, atPartner := lpay[f.requestID]
		var captures, releases int
		for _, a := range ladv[f.requestID] {
			switch {
			case a.EffectApplied && a.Effect == electrumsim.StateCaptured:
				captures++
			case a.EffectApplied && a.Effect == electrumsim.StateReleased:
				releases++
			}
		}
		id := f.requestID
		if captures > 1 || releases > 1 || captures+releases > 1 {
			v.fail("%s: partner captured %d and released %d times, want at most one effect", id, captures, releases)
		}
		if st == nil || st.Payment == nil {
			v.states["no record"]++
			// Only a request the switch never stored may be unknown to it:
			// it was never answered, and never reached the partner.
			if f.payStatus != -1 && f.payStatus != http.StatusServiceUnavailable {
				v.fail("%s: the POS was answered %d but the switch has no record", id, f.payStatus)
			}
			if atPartner {
				v.fail("%s: the partner has the payment (%s) but the switch has no record", id, lp.State)
			}
			continue
		}
		p := st.Payment
		state := string(p.State)
		if p.Tombstone {
			state += " (tombstone)"
		}
		v.states[state]++
		if !settled(st) {
			v.fail("%s: not settled: payment %s, advices %s", id, p.State, adviceStates(st))
		}
		for _, a := range st.Advices {
			if a.State == qrswitch.AdviceDone && a.Attempts == 0 && a.Note == "" {
				v.fail("%s: advice %s done without an attempt or a note", id, a.ID)
			}
		}
		// The switch's record against the partner's ledger.
		switch p.State {
		case "CONFIRMED":
			if captures != 1 || lp.State != electrumsim.StateCaptured {
				v.fail("%s: CONFIRMED but the partner captured %d times (payment %q)", id, captures, lp.State)
			}
		case "REVERSED":
			if atPartner && lp.State != electrumsim.StateReleased && lp.State != electrumsim.StateDeclined {
				v.fail("%s: REVERSED but the partner's payment is %s", id, lp.State)
			}
		case "DECLINED", "NO_SCAN":
			if atPartner && lp.State != electrumsim.StateDeclined {
				v.fail("%s: %s but the partner's payment is %s", id, p.State, lp.State)
			}
		default:
			v.fail("%s: ends %s", id, p.State)
		}
		// The switch's record against what the POS was told.
		adviceTaken := f.adviceStatus == http.StatusAccepted
		switch {
		case f.payStatus == http.StatusCreated && f.advice == "confirm" && adviceTaken && p.State != "CONFIRMED",
			f.payStatus == http.StatusCreated && f.advice == "void" && adviceTaken && p.State != "REVERSED",
			f.payStatus == http.StatusGatewayTimeout && p.State != "REVERSED",
			f.payErrorType == wire.NoScanReceived && p.State != "NO_SCAN",
			f.payStatus == -1 && p.State == "CONFIRMED":
			v.fail("%s: POS told pay %d %s, advice %s %d; the switch says %s", id, f.payStatus, f.payErrorType, f.advice, f.adviceStatus, p.State)
		case f.payStatus >= 400 && f.payStatus != http.StatusGatewayTimeout && f.payErrorType != wire.NoScanReceived &&
			f.payStatus != http.StatusServiceUnavailable && p.State != "DECLINED":
			v.fail("%s: POS told pay %d %s (declined); the switch says %s", id, f.payStatus, f.payErrorType, p.State)
		}
		if f.advice != "" && f.adviceStatus != http.StatusAccepted && !(f.advice != "confirm" && f.adviceStatus == http.StatusNotFound) {
			v.fail("%s: the POS's %s was answered %d", id, f.advice, f.adviceStatus)
		}
		// No advice lost: one the POS was told is stored is in the record.
		if adviceTaken {
			found := false
			for _, a := range st.Advices {
				found = found || a.ID == f.adviceID
			}
			if !found {
				v.fail("%s: advice %s was accepted (202) but is not in the switch's record", id, f.adviceID)
			}
		}
	}
	for _, lp := range ledger.Payments {
		if !known[lp.ID] {
			v.fail("%s: the partner has a payment no POS sent", lp.ID)
		}
		if lp.State == electrumsim.StateReserved {
			v.fail("%s: the partner still holds the customer's funds (reserved): an unknown never resolved", lp.ID)
		}
	}
	return v
}

func adviceStates(st *qrswitch.Story) string {
	var s []string
	for _, a := range st.Advices {
		s = append(s, fmt.Sprintf("%s %s %s (%d attempts, last %s %s)", a.Kind, a.ID, a.State, a.Attempts, a.LastCode, a.LastError))
	}
	return strings.Join(s, "; ")
}

func (v *soakVerdict) report(t *testing.T, faults map[string]int) {
	var b strings.Builder
	fmt.Fprintf(&b, "crash soak: %d flows in %s of traffic (%s in all), %d switch kills (SIGKILL), %d faults injected, %d invariant violations\n",
		v.flows, v.traffic.Round(time.Millisecond), v.duration.Round(time.Millisecond), v.kills, v.faults, len(v.violations))
	section := func(title string, m map[string]int) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintf(&b, "  %s:", title)
		for _, k := range keys {
			fmt.Fprintf(&b, " %s=%d", k, m[k])
		}
		b.WriteString("\n")
	}
	section("pay answers", v.payAnswers)
	section("POS advices (answer)", v.advices)
	section("final states", v.states)
	section("faults", faults)
	if len(v.chaos) > 0 {
		section("backend chaos", v.chaos)
	}
	l := v.ledger
	fmt.Fprintf(&b, "  partner: payments=%d approved=%d declined=%d captured=%d released=%d reserved=%d advices=%d deliveries=%d duplicates=%d effects=%d",
		l.Payments, l.Approved, l.Declined, l.Captured, l.Released, l.Reserved, l.Confirmations+l.Reversals, l.AdviceDeliveries, l.DuplicateDeliveries, l.EffectsApplied)
	t.Log(b.String())
}
