package ilphttp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrswitch/qrswitch/internal/jstest"
	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/stream"
)

// receiverServer runs the Go STREAM receiver behind the ILP-over-HTTP
// handler for one destination address and account.
// A maxPacket above zero makes it refuse larger Prepares with F08, as a
// connector in front of the receiver would.
func receiverServer(t *testing.T, dest ilp.Address, d stream.Destination, maxPacket uint64) (url string, prepares *int) {
	t.Helper()
	recv := &stream.Receiver{Address: "test.qrswitch"}
	var mu sync.Mutex
	n := 0
	h := &Handler{
		Peers:   []Peer{{Name: "payer", Token: "payer-token", Address: "test.qrswitch.payer", AssetCode: "USD", AssetScale: 2}},
		Address: "test.qrswitch",
		Handle: func(ctx context.Context, _ *Peer, p *ilp.Prepare) (ilp.Reply, error) {
			mu.Lock()
			n++
			mu.Unlock()
			if maxPacket > 0 && p.Amount > maxPacket {
				data, _ := ilp.AmountTooLarge{Received: p.Amount, Maximum: maxPacket}.MarshalBinary()
				return &ilp.Reject{Code: ilp.F08AmountTooLarge, TriggeredBy: "test.qrswitch", Data: data}, nil
			}
			if !p.Destination.HasPrefix(dest) {
				return &ilp.Reject{Code: ilp.F02Unreachable, TriggeredBy: "test.qrswitch"}, nil
			}
			return recv.Receive(ctx, p, d)
		},
		OnError: func(_ *http.Request, err error) { t.Errorf("handler error: %v", err) },
	}
	srv := startServer(t, h)
	return srv.URL + "/ilp", &n
}

func newSecret(t *testing.T) []byte {
	s := make([]byte, 32)
	if _, err := rand.Read(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPayPaysGoReceiver: @interledger/pay, with a plugin that POSTs to the
// handler, pays the Go receiver a fixed delivery; pay reports the full
// amount delivered and the account holds exactly that.
func TestPayPaysGoReceiver(t *testing.T) {
	for _, maxPacket := range []uint64{0, 10000} {
		t.Run("max packet "+strconv.FormatUint(maxPacket, 10), func(t *testing.T) {
			payGoReceiver(t, maxPacket)
		})
	}
}

func payGoReceiver(t *testing.T, maxPacket uint64) {
	const amount = 123456
	secret := newSecret(t)
	dest := ilp.Address("test.qrswitch.incoming.ip1")
	acct := stream.NewMemoryAccount(amount, true)
	url, prepares := receiverServer(t, dest, stream.Destination{SharedSecret: secret, AssetCode: "USD", AssetScale: 2, Account: acct}, maxPacket)

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := jstest.Command(ctx, t, filepath.Join("testdata", "pay.js"),
		url, "payer-token", string(dest), base64.StdEncoding.EncodeToString(secret), strconv.Itoa(amount), "USD", "2")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node pay.js: %v\n%s\n%s", err, out, stderr.String())
	}
	var res struct {
		DestinationAsset struct {
			Code  string `json:"code"`
			Scale int    `json:"scale"`
		} `json:"destinationAsset"`
		AmountSent      string  `json:"amountSent"`
		AmountDelivered string  `json:"amountDelivered"`
		Error           *string `json:"error"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("reading pay.js output %q: %v", out, err)
	}
	if res.Error != nil {
		t.Fatalf("pay ended with error %s (delivered %s)", *res.Error, res.AmountDelivered)
	}
	if res.AmountDelivered != strconv.Itoa(amount) || res.AmountSent != strconv.Itoa(amount) {
		t.Errorf("pay sent %s and delivered %s, want %d", res.AmountSent, res.AmountDelivered, amount)
	}
	if res.DestinationAsset.Code != "USD" || res.DestinationAsset.Scale != 2 {
		t.Errorf("pay learned asset %+v, want USD 2", res.DestinationAsset)
	}
	if acct.Received() != amount {
		t.Errorf("account credited %d, want %d", acct.Received(), amount)
	}
	if bal, _ := acct.Balance(ctx); !bal.Closed {
		t.Errorf("account not completed at its receive max")
	}
	if want := int((amount + maxPacket - 1) / max(maxPacket, 1)); maxPacket > 0 && acct.Credits() < want {
		t.Errorf("account took %d packets, want at least %d of at most %d", acct.Credits(), want, maxPacket)
	}
	t.Logf("pay used %d Prepares (asset probe, rate probes, %d credited packets)", *prepares, acct.Credits())
}

// TestSenderPaysStreamReceiver: the Go sender pays
// @interledger/stream-receiver's StreamServer, behind a small ILP-over-HTTP
// listener, a fixed source amount; the JS side's tally is the amount.
func TestSenderPaysStreamReceiver(t *testing.T) {
	const amount = 98765
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := jstest.Command(ctx, t, filepath.Join("testdata", "streamserver.js"), "sender-token", "EUR", "3")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer stdin.Close()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		t.Fatalf("streamserver.js printed no credentials: %v\n%s", lines.Err(), stderr.String())
	}
	var creds struct {
		URL, Address, Secret string
	}
	if err := json.Unmarshal(lines.Bytes(), &creds); err != nil {
		t.Fatalf("reading credentials %q: %v", lines.Bytes(), err)
	}
	secret, err := base64.StdEncoding.DecodeString(creds.Secret)
	if err != nil {
		t.Fatal(err)
	}
	dest, err := ilp.ParseAddress(creds.Address)
	if err != nil {
		t.Fatal(err)
	}
	client := NewClient(creds.URL, "sender-token", 30*time.Second)
	s := &stream.Sender{Link: client.Send, MinBackoff: 10 * time.Millisecond}
	st, err := s.Pay(ctx, stream.Payment{Destination: dest, SharedSecret: secret, Mode: stream.FixedSend, Amount: amount, MaxPacketAmount: 10000}, stream.State{})
	if err != nil {
		t.Fatalf("Pay() error = %v (state %+v)\n%s", err, st, stderr.String())
	}
	if !st.Done || st.Sent != amount || st.Delivered != amount {
		t.Errorf("Pay() sent %d delivered %d done %v, want %d", st.Sent, st.Delivered, st.Done, amount)
	}
	if st.Asset == nil || *st.Asset != (stream.AssetDetails{Code: "EUR", Scale: 3}) {
		t.Errorf("asset from stream-receiver = %+v, want EUR 3", st.Asset)
	}
	stdin.Close()
	if !lines.Scan() {
		t.Fatalf("streamserver.js printed no tally: %v\n%s", lines.Err(), stderr.String())
	}
	var tally struct {
		Total   string `json:"total"`
		Packets int    `json:"packets"`
	}
	if err := json.Unmarshal(lines.Bytes(), &tally); err != nil {
		t.Fatalf("reading tally %q: %v", lines.Bytes(), err)
	}
	if tally.Total != strconv.Itoa(amount) || tally.Packets != 10 {
		t.Errorf("stream-receiver accepted %s in %d packets, want %d in 10", tally.Total, tally.Packets, amount)
	}
	io.Copy(io.Discard, stdout)
}

// TestSenderResumesOverHTTP: the Go sender pays the Go receiver over HTTP,
// "crashes" after a packet was credited but before its reply arrived, and
// a new sender resumes from the persisted JSON state: exactly the amount
// arrives.
func TestSenderResumesOverHTTP(t *testing.T) {
	const amount = 5000
	secret := newSecret(t)
	dest := ilp.Address("test.qrswitch.incoming.ip2")
	acct := stream.NewMemoryAccount(stream.Unlimited, false)
	url, _ := receiverServer(t, dest, stream.Destination{SharedSecret: secret, AssetCode: "USD", AssetScale: 2, Account: acct}, 0)
	client := NewClient(url, "payer-token", 30*time.Second)

	var saved []byte
	save := func(_ context.Context, st stream.State) error {
		b, err := json.Marshal(st)
		saved = b
		return err
	}
	ctx, crash := context.WithCancel(context.Background())
	defer crash()
	fulfills := 0
	link := func(ctx context.Context, p *ilp.Prepare) (ilp.Reply, error) {
		rep, err := client.Send(ctx, p)
		if _, ok := rep.(*ilp.Fulfill); ok {
			if fulfills++; fulfills == 4 {
				crash()
				return nil, errors.New("process died before the reply was read")
			}
		}
		return rep, err
	}
	pay := stream.Payment{Destination: dest, SharedSecret: secret, Mode: stream.FixedReceive, Amount: amount, MaxPacketAmount: 600}
	first := &stream.Sender{Link: link, Save: save, PacketExpiry: 5 * time.Second, MinBackoff: 10 * time.Millisecond}
	if _, err := first.Pay(ctx, pay, stream.State{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("first Pay() error = %v, want context.Canceled", err)
	}
	var st stream.State
	if err := json.Unmarshal(saved, &st); err != nil {
		t.Fatal(err)
	}
	if st.InFlight == nil || acct.Received() != 2400 {
		t.Fatalf("after the crash: state %s, account %d; want a packet in flight and 2400 credited", saved, acct.Received())
	}
	second := &stream.Sender{Link: client.Send, Save: save, PacketExpiry: 10 * time.Second, MinBackoff: 10 * time.Millisecond}
	st, err := second.Pay(context.Background(), pay, st)
	if err != nil {
		t.Fatalf("resumed Pay() error = %v", err)
	}
	if !st.Done || st.Delivered != amount || acct.Received() != amount {
		t.Errorf("resumed: delivered %d, account %d, want exactly %d", st.Delivered, acct.Received(), amount)
	}
}

// TestILDCPWithReference: ilp-protocol-ildcp's fetch, over HTTP, gets the
// peer's configuration from the handler.
func TestILDCPWithReference(t *testing.T) {
	var seen []string
	srv := startServer(t, echoHandler(&seen))
	out := jstest.Run(t, filepath.Join("testdata", "ildcp.js"), nil, srv.URL, "alice-token")
	var cfg struct {
		ClientAddress string `json:"clientAddress"`
		AssetScale    int    `json:"assetScale"`
		AssetCode     string `json:"assetCode"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("reading ildcp.js output %q: %v", out, err)
	}
	if cfg.ClientAddress != "test.switch.alice" || cfg.AssetCode != "USD" || cfg.AssetScale != 2 {
		t.Errorf("ilp-protocol-ildcp fetched %+v, want test.switch.alice USD 2", cfg)
	}
}

// TestDuplicatePrepareOverHTTP: the same Prepare posted twice (a peer
// retrying after losing the first response) is credited once and
// fulfilled twice with the same fulfillment.
func TestDuplicatePrepareOverHTTP(t *testing.T) {
	secret := newSecret(t)
	dest := ilp.Address("test.qrswitch.incoming.ip3")
	acct := stream.NewMemoryAccount(stream.Unlimited, false)
	url, _ := receiverServer(t, dest, stream.Destination{SharedSecret: secret, Account: acct}, 0)
	keys, err := stream.NewKeys(secret)
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.SealPacket(&stream.Packet{Sequence: 1, ILPType: ilp.TypePrepare, PrepareAmount: 700,
		Frames: []stream.Frame{stream.StreamMoney{StreamID: 1, Shares: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	p := &ilp.Prepare{Amount: 700, ExpiresAt: time.Now().Add(time.Minute), ExecutionCondition: keys.ConditionFor(data), Destination: dest, Data: data}
	client := NewClient(url, "payer-token", 30*time.Second)
	var fulfillments [][32]byte
	for i := 0; i < 2; i++ {
		rep, err := client.Send(context.Background(), p)
		f, ok := rep.(*ilp.Fulfill)
		if err != nil || !ok {
			t.Fatalf("Send #%d = %+v, %v, want Fulfill", i, rep, err)
		}
		fulfillments = append(fulfillments, f.Fulfillment)
	}
	if fulfillments[0] != fulfillments[1] || fulfillments[0] != keys.FulfillmentFor(data) {
		t.Errorf("fulfillments %x and %x, want both %x", fulfillments[0], fulfillments[1], keys.FulfillmentFor(data))
	}
	if acct.Received() != 700 || acct.Credits() != 1 {
		t.Errorf("account credited %d in %d credits, want 700 in 1", acct.Received(), acct.Credits())
	}
}
