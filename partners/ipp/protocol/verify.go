package protocol

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Signer sets a notification's verification: with Key, the RSA scheme
// (ver_data is the base64 RSASSA-PKCS1-v1_5 signature of the record's
// SHA1); without, the query scheme (ver_data is the record's SHA1, to be
// looked up at the signer's accountant).
type Signer struct {
	Key *rsa.PrivateKey
}

// Sign sets n's ver_scheme and ver_data.
func (s Signer) Sign(n *Notification) error {
	if s.Key == nil {
		n.Scheme, n.VerData = SchemeQuery, n.SHA1()
		return nil
	}
	sum := sha1.Sum([]byte(n.Canonical()))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.Key, crypto.SHA1, sum[:])
	if err != nil {
		return fmt.Errorf("signing IPP record: %w", err)
	}
	n.Scheme, n.VerData = SchemeRSA, base64.StdEncoding.EncodeToString(sig)
	return nil
}

// QueryReply is an accountant's answer to a verification query about one
// of its records (the seed leaves its shape open; docs/ipp.md): the
// record's code and status and the record itself in canonical form.
type QueryReply struct {
	Code    Code   `json:"code"`
	Status  string `json:"status"`
	Record  string `json:"record,omitempty"`
	Message string `json:"message,omitempty"`
}

// Verifier verifies notifications and decisions against the notifier's
// brand: its manifest's accountants (query scheme) or certificate (RSA).
type Verifier struct {
	Dir *Directory
}

// Evidence is what a verification saw, kept with the record for auditors.
type Evidence struct {
	Scheme  string `json:"scheme"`
	VerData string `json:"verData,omitempty"`
	// Accountant and Answer are the query scheme's: whom it asked and what
	// came back.
	Accountant string `json:"accountant,omitempty"`
	Answer     string `json:"answer,omitempty"`
	// Certificate is the RSA scheme's: the certificate's SHA-256 and
	// subject.
	Certificate string `json:"certificate,omitempty"`
}

// Verify checks that n was sent by brand's accountant (brand: the
// counterpart the notification comes from). Errors are *ParamError with
// 701–703 (brand's manifest), 804 (verification failed), 900 (the
// notifier's accountant could not be asked) or 901 (an unknown scheme).
//
// A failure against a manifest cached for 30 s or more is tried once more
// against a fresh copy (the brand may have rotated its key or moved its
// accountant).
func (v Verifier) Verify(ctx context.Context, n *Notification, brand string) (*Evidence, error) {
	ev, err := v.verify(ctx, n, brand)
	var pe *ParamError
	if errors.As(err, &pe) && pe.Code != CodeSchemeUnsupported && v.Dir.Stale(brand) {
		return v.verify(ctx, n, brand)
	}
	return ev, err
}

func (v Verifier) verify(ctx context.Context, n *Notification, brand string) (*Evidence, error) {
	if n.Scheme != SchemeQuery && n.Scheme != SchemeRSA {
		return nil, &ParamError{Code: CodeSchemeUnsupported, Param: "ver_scheme", Msg: fmt.Sprintf("%s is not supported; use %s or %s", n.Scheme, SchemeQuery, SchemeRSA)}
	}
	m, err := v.Dir.Manifest(ctx, brand)
	if err != nil {
		return nil, err
	}
	if !m.Speaks(n.Scheme) {
		return nil, &ParamError{Code: CodeSchemeUnsupported, Param: "ver_scheme", Msg: fmt.Sprintf("the manifest of %s does not list %s", brand, n.Scheme)}
	}
	ev := &Evidence{Scheme: n.Scheme, VerData: n.VerData}
	if n.Scheme == SchemeRSA {
		cert, err := v.Dir.Certificate(ctx, brand)
		if err != nil {
			return nil, err
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return nil, &ParamError{Code: CodeSchemeDependency, Msg: "the certificate of " + brand + " holds no RSA key"}
		}
		sig, err := base64.StdEncoding.DecodeString(n.VerData)
		if err != nil {
			return nil, &ParamError{Code: CodeVerification, Param: "ver_data", Msg: "not base64"}
		}
		sum := sha1.Sum([]byte(n.Canonical()))
		if rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], sig) != nil {
			return nil, &ParamError{Code: CodeVerification, Param: "ver_data", Msg: "the signature does not verify with the certificate of " + brand}
		}
		ev.Certificate = fmt.Sprintf("%x %s", sha1.Sum(cert.Raw), cert.Subject)
		return ev, nil
	}
	sum := n.SHA1()
	if n.VerData != "" && !strings.EqualFold(n.VerData, sum) {
		return nil, &ParamError{Code: CodeVerification, Param: "ver_data", Msg: "ver_data is not the record's SHA1"}
	}
	var lastErr error
	for _, acct := range m.Accountants {
		q, raw, err := v.query(ctx, acct, sum)
		if err != nil {
			lastErr = err
			continue
		}
		ev.Accountant, ev.Answer = acct, raw
		switch {
		case q == nil:
			return nil, &ParamError{Code: CodeVerification, Msg: "the accountant of " + brand + " does not know the record"}
		case q.Code != n.Code || q.Status != n.Status || q.Record != n.Canonical():
			return nil, &ParamError{Code: CodeVerification, Msg: fmt.Sprintf("the accountant of %s answered code %d %q for the record, not the notification's", brand, q.Code, q.Status)}
		}
		return ev, nil
	}
	return nil, &ParamError{Code: CodeServerError, Msg: fmt.Sprintf("asking the accountant of %s: %v", brand, lastErr)}
}

// query asks an accountant about a record: a nil QueryReply is its "no such
// record" (404).
func (v Verifier) query(ctx context.Context, acct, sum string) (*QueryReply, string, error) {
	u, err := url.Parse(acct)
	if err != nil {
		return nil, "", err
	}
	q := u.Query()
	q.Set("ver_query", sum)
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.Dir.Client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if err != nil {
		return nil, "", err
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, string(b), nil
	default:
		return nil, "", fmt.Errorf("%s answered %d", acct, resp.StatusCode)
	}
	var qr QueryReply
	if err := json.Unmarshal(b, &qr); err != nil {
		return nil, "", fmt.Errorf("%s answered unreadable JSON: %w", acct, err)
	}
	return &qr, string(b), nil
}
