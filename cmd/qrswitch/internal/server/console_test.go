package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	qrswitch "github.com/qrswitch/qrswitch/switch"
)

const chromiumHint = "the console test drives a real headless Chromium: install it with `apt-get install chromium` (scripts/test does it)"

// chromium returns the browser to drive, failing the test when there is
// none: the console test never skips.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Fatalf("no Chromium in PATH: %s", chromiumHint)
	return ""
}

// screenshotDir is where the walk-through's screenshots go: docs/images
// with QRSWITCH_SCREENSHOTS=1 (they illustrate the README), a temporary
// directory otherwise.
func screenshotDir(t *testing.T) string {
	if os.Getenv("QRSWITCH_SCREENSHOTS") == "1" {
		dir := filepath.Join("..", "..", "..", "..", "docs", "images")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestConsoleWalkthrough drives the console in headless Chromium as a
// support operator would: log in (after a mistyped password), search,
// open a payment and read its message flow, then the store-and-forward
// page, where a paused partner and a dead letter wait, and replay it. The
// page must run without a script error or a Content-Security-Policy
// violation.
//
// Not parallel: Chromium takes most of a small machine's CPU for a few
// seconds, which would upset the timing of the parallel tests; run first,
// alone, it costs its own seconds and nobody else's.
func TestConsoleWalkthrough(t *testing.T) {
	shots := screenshotDir(t)
	h := NewHarness(t, deadLetters)

	approved := h.approvedPayment(t, 12999)
	if r := h.Post(t, "/qr/v1/payments/confirmations", ShopUser, ShopPass, confirmation(approved.ID)); r.status != 202 {
		t.Fatalf("confirmation = %d", r.status)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", approved.ID), "CONFIRMED")
	h.payAs(t, shop1, 4551, nil)  // declined
	h.payAs(t, shop1, 2564, nil)  // unknown: reversed
	h.payAs(t, shop2, 31000, nil) // another retailer
	dead, deadConf, deadKey := h.deadAdvice(t, 8020)
	if r := h.actionAs(t, SupUser, SupPass, "/support/v1/saf/wallet-b/pause", reason("wallet-b maintenance window, ticket OPS-118")); r.status != 200 {
		t.Fatalf("pause = %d", r.status)
	}

	r := h.Do(t, http.MethodGet, "/console/", "", "", nil)
	if csp := r.header.Get("Content-Security-Policy"); r.status != 200 || !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "script-src 'self'") {
		t.Fatalf("GET /console/ = %d with CSP %q", r.status, csp)
	}
	if strings.Contains(string(r.body), "<script>") || strings.Contains(string(r.body), "style=") {
		t.Fatalf("the console page has an inline script or style")
	}

	b := startBrowser(t, shots)
	eval, do, text, count, shot, css, waitFor, click := b.eval, b.do, b.text, b.count, b.shot, b.css, b.waitFor, b.click
	do("log in with a mistyped password",
		chromedp.Navigate(h.Base+"/console/"),
		chromedp.WaitVisible(css("#login")),
		chromedp.SendKeys(css("#username"), SupUser),
		chromedp.SendKeys(css("#password"), "not-the-password"),
		chromedp.Click(css("#login-button")),
		chromedp.WaitVisible(css("#login-error")),
	)
	if msg := text("#login-error"); !strings.Contains(msg, "Wrong username or password") {
		t.Errorf("login error = %q", msg)
	}
	do("log in",
		chromedp.Clear(css("#password")),
		chromedp.SendKeys(css("#password"), SupPass),
		chromedp.Click(css("#login-button")),
		chromedp.WaitVisible(css("#search-view")),
	)
	if who := text("#whoami"); who != SupUser+" (operator)" {
		t.Errorf("whoami = %q", who)
	}

	do("search shop-1's payments",
		chromedp.SendKeys(css(`#search-form input[name=retailer]`), "shop-1"),
		chromedp.Click(css("#search-button")),
		chromedp.WaitVisible(css(`#results tbody tr.result`)),
	)
	if rows := count(`#results tbody tr.result`); rows != 4 {
		t.Errorf("search for shop-1 shows %d rows, want 4", rows)
	}
	shot("console-search.png")

	key := qrswitch.PaymentKey("shop-1", approved.ID)
	do("open the confirmed payment", chromedp.Click(css(fmt.Sprintf(`#results tr.result[data-key=%q]`, key))))
	waitFor(`#flow g.msg`)
	click(`#flow g.msg[data-op="pay"][data-kind="request"]`)
	do("read the pay request", chromedp.WaitVisible(css("#message-detail")))
	msgs := count(`#flow g.msg`)
	ops := eval(`Array.from(document.querySelectorAll("#flow g.msg")).map(g => g.dataset.op + "/" + g.dataset.kind).join(" ")`)
	if title := text("#payment-title"); !strings.Contains(title, approved.ID) {
		t.Errorf("payment title = %q", title)
	}
	// createQrCode, pay, notifyScan and confirmPayment, each a request and
	// its answer, on both legs of pay and confirmPayment.
	if msgs < 12 {
		t.Errorf("the flow shows %d messages, want at least 12: %s", msgs, ops)
	}
	for _, hop := range []string{"createQrCode/request", "pay/request", "notifyScan/request", "pay/answer", "confirmPayment/request", "confirmPayment/answer"} {
		if !strings.Contains(ops, hop) {
			t.Errorf("the flow lacks %s: %s", hop, ops)
		}
	}
	if detail := text("#message-body"); !strings.Contains(detail, approved.ID) || !strings.Contains(detail, `"amount": 12999`) {
		t.Errorf("the pay request's body = %q", detail)
	}
	shot("console-payment.png")

	do("the store-and-forward page",
		chromedp.Click(css("#nav-saf")),
		chromedp.WaitVisible(css(`#saf tbody tr.queue`)),
		chromedp.Click(css(`#saf tr.queue[data-partner="wallet-a"]`)),
		chromedp.WaitVisible(css(fmt.Sprintf(`#partner-advices tr.advice[data-advice=%q]`, deadKey))),
		chromedp.WaitVisible(css(`#audit tbody tr`)),
	)
	safRows, deadRows, paused := count(`#saf tbody tr.queue`), count(`#partner-advices tr.advice`), text(`#saf tr.queue[data-partner="wallet-b"]`)
	if safRows != 2 || deadRows != 1 || !strings.Contains(paused, "paused") || !strings.Contains(paused, "OPS-118") {
		t.Errorf("SAF page: %d queues, %d dead letters, wallet-b row %q", safRows, deadRows, paused)
	}
	shot("console-saf.png")
	do("replay the dead letter",
		chromedp.Click(css(fmt.Sprintf(`#partner-advices button.act-replay[data-advice=%q]`, deadKey))),
		chromedp.WaitVisible(css("#action-dialog")),
		chromedp.SendKeys(css("#action-reason"), "wallet-a fixed its 500s (incident 77)"),
		chromedp.Click(css("#action-confirm")),
		chromedp.WaitVisible(css("#toast")),
	)
	if toast := text("#toast"); !strings.HasPrefix(toast, "Done") {
		t.Errorf("toast after replay = %q", toast)
	}
	h.waitState(t, qrswitch.PaymentKey("shop-1", dead.ID), "CONFIRMED")
	if _, ok := auditEntry(h.story(t, dead.ID).Trace, SupUser, qrswitch.ActionReplay); !ok {
		t.Errorf("the console's replay of %s is not audited", deadConf.ID)
	}
	if errs := eval(`window.__qrsErrors.join("; ")`); errs != "" {
		t.Errorf("the page recorded errors: %s", errs)
	}

	// A viewer sees no operator buttons.
	do("log out", chromedp.Click(css("#logout")), chromedp.WaitVisible(css("#login")))
	eval(`document.querySelector("#username").value = ""`)
	do("log in as a viewer",
		chromedp.SendKeys(css("#username"), ViewUser),
		chromedp.SendKeys(css("#password"), ViewPass),
		chromedp.Click(css("#login-button")),
		chromedp.WaitVisible(css("#search-view")),
		chromedp.Click(css("#nav-saf")),
		chromedp.WaitVisible(css(`#saf tbody tr.queue`)),
	)
	if buttons := count(`#saf button`); buttons != 0 {
		t.Errorf("a viewer sees %d action buttons", buttons)
	}
	if errs := eval(`window.__qrsErrors.join("; ")`); errs != "" {
		t.Errorf("the page recorded errors: %s", errs)
	}
}

// browserKit is a headless Chromium driven by a test, with the small verbs
// the console tests use. Every page records its script errors and
// Content-Security-Policy violations in window.__qrsErrors.
type browserKit struct {
	eval    func(expr string) string
	do      func(what string, steps ...chromedp.Action[chromedp.Void])
	text    func(sel string) string
	count   func(sel string) int
	shot    func(name string)
	css     func(sel string) chromedp.CSS
	waitFor func(sel string)
	click   func(sel string)
}

// startBrowser starts Chromium for t (stopped at its end); shots is where
// screenshots go.
func startBrowser(t *testing.T, shots string) *browserKit {
	bin := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Headless,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("ignore-certificate-errors", true), // the harness's development CA
		chromedp.WindowSize(1400, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	browser, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// Every page records its script errors and Content-Security-Policy
	// violations where the test reads them (a script the debugger adds is
	// not subject to the page's CSP).
	const recorder = `window.__qrsErrors = [];
		window.addEventListener("error", (e) => window.__qrsErrors.push("error: " + e.message));
		window.addEventListener("unhandledrejection", (e) => window.__qrsErrors.push("rejection: " + e.reason));
		document.addEventListener("securitypolicyviolation", (e) => window.__qrsErrors.push("CSP: " + e.violatedDirective + " " + e.blockedURI));`
	if err := chromedp.Do(browser, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recorder})
		return err
	})); err != nil {
		t.Fatalf("starting Chromium (%s): %v", bin, err)
	}
	ctx, cancelTimeout := context.WithTimeout(browser, 60*time.Second)
	t.Cleanup(cancelTimeout)

	eval := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("evaluating %s: %v", expr, err)
		}
		return v
	}
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, step := range steps {
			sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			err := chromedp.Do(sctx, step)
			cancel()
			if err != nil {
				t.Fatalf("%s, step %d: %v; shown: %s", what, i+1, err, eval(`document.querySelector("main").innerText.slice(0, 300)`))
			}
		}
	}
	text := func(sel string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("reading %s: %v", sel, err)
		}
		return v
	}
	count := func(sel string) int {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
		if err != nil {
			t.Fatalf("counting %s: %v", sel, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	css := func(sel string) chromedp.CSS { return chromedp.CSS(sel) }
	// SVG elements have no layout box of their own that the visibility
	// checks understand: wait for them and click them through the DOM.
	waitFor := func(sel string) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); count(sel) == 0; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 10 s; page at %s, errors: %s; shown: %s", sel, eval(`location.hash`),
					eval(`window.__qrsErrors.join("; ")`), eval(`document.querySelector("main").innerText.slice(0, 400)`))
			}
		}
	}
	click := func(sel string) {
		t.Helper()
		eval(fmt.Sprintf(`document.querySelector(%q).dispatchEvent(new MouseEvent("click", {bubbles: true})), ""`, sel))
	}

	return &browserKit{eval: eval, do: do, text: text, count: count, shot: shot, css: css, waitFor: waitFor, click: click}
}
