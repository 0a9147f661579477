// Package ildcp owns the Interledger Dynamic Configuration Protocol
// (IL-RFC 31): a child asks its parent over the link for its ILP address
// and the link's asset with a Prepare to "peer.config", and the parent
// fulfills it with the configuration. It is a packet protocol any link can
// carry, so it stands apart from ilphttp, whose handler answers it.
//
// @interledger/pay does not use IL-DCP (it never asks its plugin for an
// address; it sends ConnectionNewAddress with an empty address instead),
// but connectors and ilp-plugin-based clients do.
package ildcp

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/internal/oer"
)

// Destination is the address IL-DCP requests go to.
const Destination ilp.Address = "peer.config"

// Fulfillment is the fixed fulfillment of IL-DCP responses (32 zero
// octets); Condition is its SHA-256, the condition of every request.
var (
	Fulfillment [32]byte
	Condition   = sha256.Sum256(Fulfillment[:])
)

// ErrInvalid means bytes or a packet that are not IL-DCP.
var ErrInvalid = errors.New("ildcp: invalid")

// Config is what a parent tells a child.
type Config struct {
	ClientAddress ilp.Address
	AssetScale    uint8
	AssetCode     string
}

// MarshalBinary returns the response data: the address, the scale, the
// asset code, in that order (DynamicConfigurationProtocol.asn).
func (c Config) MarshalBinary() ([]byte, error) {
	if !c.ClientAddress.Valid() {
		return nil, fmt.Errorf("%w: client address %q", ilp.ErrInvalidAddress, c.ClientAddress)
	}
	b := oer.AppendVarOctetString(nil, []byte(c.ClientAddress))
	b = append(b, c.AssetScale)
	return oer.AppendVarOctetString(b, []byte(c.AssetCode)), nil
}

// ParseConfig reads response data.
func ParseConfig(b []byte) (Config, error) {
	r := oer.NewReader(b)
	var c Config
	addr, err := r.VarOctetString()
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalid, oer.FieldError("client address", err))
	}
	if c.ClientAddress, err = ilp.ParseAddress(string(addr)); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if c.AssetScale, err = r.Uint8(); err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalid, oer.FieldError("asset scale", err))
	}
	code, err := r.VarOctetString()
	if err != nil {
		return c, fmt.Errorf("%w: %w", ErrInvalid, oer.FieldError("asset code", err))
	}
	c.AssetCode = string(code)
	return c, nil
}

// IsRequest reports whether p is addressed to peer.config.
func IsRequest(p *ilp.Prepare) bool { return p.Destination == Destination }

// Answer replies to a request with c, or rejects a malformed request.
// from is the parent's address for triggeredBy.
func Answer(p *ilp.Prepare, c Config, from ilp.Address) ilp.Reply {
	if p.ExecutionCondition != Condition {
		return &ilp.Reject{Code: ilp.F05WrongCondition, TriggeredBy: from, Message: "IL-DCP request has the wrong condition"}
	}
	data, err := c.MarshalBinary()
	if err != nil {
		return &ilp.Reject{Code: ilp.F02Unreachable, TriggeredBy: from, Message: "no address for this peer"}
	}
	return &ilp.Fulfill{Fulfillment: Fulfillment, Data: data}
}

// Request returns an IL-DCP request expiring at expiresAt.
func Request(expiresAt time.Time) *ilp.Prepare {
	return &ilp.Prepare{Destination: Destination, ExecutionCondition: Condition, ExpiresAt: expiresAt}
}

// ReadReply reads the parent's reply to Request.
func ReadReply(rep ilp.Reply) (Config, error) {
	switch r := rep.(type) {
	case *ilp.Fulfill:
		if r.Fulfillment != Fulfillment {
			return Config{}, fmt.Errorf("%w: unexpected fulfillment", ErrInvalid)
		}
		return ParseConfig(r.Data)
	case *ilp.Reject:
		return Config{}, fmt.Errorf("requesting configuration: %w", r)
	}
	return Config{}, fmt.Errorf("%w: no reply", ErrInvalid)
}
