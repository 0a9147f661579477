package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/internal/oer"
)

// Server derives STREAM credentials (an ILP address and a shared secret)
// from one server secret, as IL-RFC 29 §4.1 allows, so that a rail needs
// no table of secrets: the address carries an encrypted token naming what
// it pays (a payment tag such as an incoming payment id), and the shared
// secret is an HMAC of that token. The token layout and key derivation are
// those of @interledger/stream-receiver (flags, payment tag, asset), so
// addresses from either side resolve on the other.
type Server struct {
	base      ilp.Address
	secretGen []byte
	tokenAEAD cipher.AEAD
}

// ConnectionDetails are what a token carries.
type ConnectionDetails struct {
	// PaymentTag names what the money is for; ASCII, may be empty.
	PaymentTag string
	// Asset, when set, is announced to senders by stream-receiver.
	Asset *AssetDetails
}

// Credentials are what a receiver hands a sender (SPSP, Open Payments).
type Credentials struct {
	Address      ilp.Address
	SharedSecret []byte
}

// ErrUnknownToken means an address this Server did not issue.
var ErrUnknownToken = errors.New("stream: address carries no token of this server")

const (
	flagPaymentTag = 1
	flagReceipts   = 2
	flagAsset      = 4
)

var (
	tokenString        = []byte("ilp_stream_connection_token")
	sharedSecretString = []byte("ilp_stream_shared_secret")
)

// NewServer returns a Server issuing addresses under base from a 32-octet
// server secret.
func NewServer(base ilp.Address, serverSecret []byte) (*Server, error) {
	if !base.Valid() {
		return nil, fmt.Errorf("%w: base %q", ilp.ErrInvalidAddress, base)
	}
	if len(serverSecret) != 32 {
		return nil, ErrSecret
	}
	block, err := aes.NewCipher(hmacSHA256(serverSecret, tokenString))
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return &Server{base: base, secretGen: hmacSHA256(serverSecret, sharedSecretString), tokenAEAD: aead}, nil
}

// Generate issues fresh credentials for d.
func (s *Server) Generate(d ConnectionDetails) (Credentials, error) {
	for i := 0; i < len(d.PaymentTag); i++ {
		if d.PaymentTag[i] >= 0x80 {
			return Credentials{}, fmt.Errorf("stream: payment tag must be ASCII")
		}
	}
	var flags byte
	var body []byte
	if d.PaymentTag != "" {
		flags |= flagPaymentTag
		body = oer.AppendVarOctetString(body, []byte(d.PaymentTag))
	}
	if d.Asset != nil {
		flags |= flagAsset
		body = oer.AppendVarOctetString(body, []byte(d.Asset.Code))
		body = append(body, d.Asset.Scale)
	}
	plain := append([]byte{flags}, body...)
	token := make([]byte, ivSize+tagSize+len(plain))
	if _, err := rand.Read(token[:ivSize]); err != nil {
		return Credentials{}, fmt.Errorf("reading random IV: %w", err)
	}
	sealed := s.tokenAEAD.Seal(nil, token[:ivSize], plain, nil)
	copy(token[ivSize:], sealed[len(plain):])
	copy(token[Overhead:], sealed[:len(plain)])
	addr, err := s.base.Append(base64.RawURLEncoding.EncodeToString(token))
	if err != nil {
		return Credentials{}, fmt.Errorf("stream: too much data for an ILP address: %w", err)
	}
	return Credentials{Address: addr, SharedSecret: hmacSHA256(s.secretGen, token)}, nil
}

// Resolve reads the token in a destination address issued by this server
// (further segments after the token are allowed) and returns its details
// and the connection's shared secret.
func (s *Server) Resolve(dest ilp.Address) (ConnectionDetails, []byte, error) {
	var d ConnectionDetails
	rest, ok := strings.CutPrefix(string(dest), string(s.base)+".")
	if !ok {
		return d, nil, ErrUnknownToken
	}
	seg, _, _ := strings.Cut(rest, ".")
	token, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || len(token) < Overhead {
		return d, nil, ErrUnknownToken
	}
	ct := append(append([]byte{}, token[Overhead:]...), token[ivSize:Overhead]...)
	plain, err := s.tokenAEAD.Open(nil, token[:ivSize], ct, nil)
	if err != nil || len(plain) == 0 {
		return d, nil, ErrUnknownToken
	}
	r := oer.NewReader(plain[1:])
	flags := plain[0]
	if flags&flagPaymentTag != 0 {
		tag, err := r.VarOctetString()
		if err != nil {
			return d, nil, ErrUnknownToken
		}
		d.PaymentTag = string(tag)
	}
	if flags&flagReceipts != 0 {
		// Receipt nonce and secret: this package does not issue receipts,
		// but it reads past them so the rest of the token still resolves.
		if _, err := r.Read(16 + 32); err != nil {
			return d, nil, ErrUnknownToken
		}
	}
	if flags&flagAsset != 0 {
		code, err := r.VarOctetString()
		if err != nil {
			return d, nil, ErrUnknownToken
		}
		scale, err := r.Uint8()
		if err != nil {
			return d, nil, ErrUnknownToken
		}
		d.Asset = &AssetDetails{Code: string(code), Scale: scale}
	}
	return d, hmacSHA256(s.secretGen, token), nil
}
