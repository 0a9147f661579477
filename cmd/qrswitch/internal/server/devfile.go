package server

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/qrswitch/qrswitch/cmd/qrswitch/internal/config"
)

// DevFileName is the file under data_dir where the development setup
// describes itself.
const DevFileName = "dev.json"

// DevInfo is var/dev.json: everything a person or a test needs to use the
// development setup — every listener, the CA to trust, every credential,
// and each rail's simulator with its entry URLs. Scripts and tests read it
// instead of scraping logs. The README documents its keys.
type DevInfo struct {
	// Switch is the HTTPS listener: retailers, rails' surfaces, support,
	// the console.
	Switch string `json:"switch"`
	// Admin is the plain-HTTP listener: /healthz, /readyz, /metrics.
	Admin string `json:"admin"`
	// CAFile is the development CA every client must trust.
	CAFile string `json:"caFile"`
	// Console is the support console's URL.
	Console string `json:"console"`
	// Store is the store's URL.
	Store string `json:"store"`
	// Checkout is the web shops' listener (0xbtcpay's integration), when
	// a retailer has a checkout.
	Checkout  string        `json:"checkout,omitempty"`
	Retailers []DevRetailer `json:"retailers"`
	Partners  []DevPartner  `json:"partners"`
	Support   []DevSupport  `json:"support"`
}

// DevRetailer is a retailer's credentials.
type DevRetailer struct {
	ID            string `json:"id"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	InstitutionID string `json:"institutionId"`
	// Checkout is the retailer's web-shop checkout, if it has one.
	Checkout *DevCheckout `json:"checkout,omitempty"`
}

// DevCheckout is a web shop's checkout: where to start payments, how to
// read their status, and the secret its postbacks are signed with.
type DevCheckout struct {
	StartPayment   string `json:"startPayment"`
	Status         string `json:"status"`
	Currency       string `json:"currency"`
	PostbackSecret string `json:"postbackSecret"`
}

// DevPartner is a partner, its rail, its credentials and its simulator.
type DevPartner struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Rail string `json:"rail"`
	// BaseURL is where the switch reaches the partner (its simulator).
	BaseURL string `json:"baseUrl,omitempty"`
	// SwitchUsername and SwitchPassword: what the switch presents to it.
	SwitchUsername string `json:"switchUsername,omitempty"`
	SwitchPassword string `json:"switchPassword,omitempty"`
	// ScanUsername and ScanPassword: what it presents to the switch.
	ScanUsername string `json:"scanUsername,omitempty"`
	ScanPassword string `json:"scanPassword,omitempty"`
	// Simulator is what the rail's simulator says of itself (entry URLs,
	// controls); absent when the rail has none.
	Simulator map[string]any `json:"simulator,omitempty"`
}

// DevSupport is a support account.
type DevSupport struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

// DevInfo describes the running development setup.
func (s *Server) DevInfo() *DevInfo {
	base := "https://" + dialable(s.Addr())
	d := &DevInfo{
		Switch: base, Admin: "http://" + dialable(s.AdminAddr()), CAFile: s.devCA,
		Console: base + "/console/", Store: s.cfg.Redacted().Store.URL,
	}
	scheme := "http://"
	if s.cfg.Checkout.TLS {
		scheme = "https://"
	}
	if s.checkoutLn != nil {
		d.Checkout = scheme + dialable(s.CheckoutAddr())
	}
	for _, r := range s.cfg.Retailers {
		dr := DevRetailer{ID: r.ID, Username: r.Username, Password: r.Password, InstitutionID: r.InstitutionID}
		if r.Checkout.Enabled() && d.Checkout != "" {
			dr.Checkout = &DevCheckout{StartPayment: d.Checkout + "/", Status: d.Checkout + "/{id}/status.json",
				Currency: r.Checkout.Currency, PostbackSecret: r.Checkout.PostbackSecret}
		}
		d.Retailers = append(d.Retailers, dr)
	}
	sims := map[string]map[string]any{}
	for _, sim := range s.sims {
		sims[sim.partner] = sim.sim.Describe()
	}
	for _, p := range s.cfg.Partners {
		d.Partners = append(d.Partners, DevPartner{
			ID: p.ID, Name: p.Name, Rail: p.Rail, BaseURL: p.BaseURL,
			SwitchUsername: p.Username, SwitchPassword: p.Password,
			ScanUsername: p.ScanUsername, ScanPassword: p.ScanPassword,
			Simulator: sims[p.ID],
		})
	}
	for _, u := range s.cfg.Support {
		d.Support = append(d.Support, DevSupport{Username: u.Username, Password: u.Password, Role: u.Role})
	}
	return d
}

// writeDevFile writes var/dev.json (readable by its owner only: it holds
// passwords, if only the development setup's).
func (s *Server) writeDevFile() error {
	if !s.cfg.Development {
		return nil
	}
	b, err := json.MarshalIndent(s.DevInfo(), "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.cfg.DataDir, DevFileName)
	if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp, path)
}

// DevFile is the path of var/dev.json.
func DevFile(cfg *config.Config) string { return filepath.Join(cfg.DataDir, DevFileName) }
