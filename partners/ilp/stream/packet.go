package stream

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/qrswitch/qrswitch/partners/ilp"
	"github.com/qrswitch/qrswitch/partners/ilp/internal/oer"
)

// Version is the STREAM version this package speaks.
const Version = 1

// Encryption envelope sizes (§5.1.1).
const (
	ivSize   = 12
	tagSize  = 16
	Overhead = ivSize + tagSize
)

// Errors of the packet layer.
var (
	// ErrDecrypt means the data is not a STREAM packet sealed with this key.
	ErrDecrypt = errors.New("stream: cannot decrypt packet")
	// ErrInvalidPacket means decrypted bytes are not a STREAM packet.
	ErrInvalidPacket = errors.New("stream: invalid packet")
	// ErrSecret means a shared secret of the wrong size.
	ErrSecret = errors.New("stream: shared secret must be 32 octets")
)

// Packet is a decrypted STREAM packet (§5.2).
type Packet struct {
	Sequence uint64
	// ILPType is the ILP packet type this STREAM packet travels in.
	ILPType ilp.Type
	// PrepareAmount is, on a Prepare, the least the receiver should
	// accept; on a Fulfill or Reject, the amount that arrived.
	PrepareAmount uint64
	Frames        []Frame
}

// AppendBinary appends the plaintext encoding of p.
func (p *Packet) AppendBinary(dst []byte) []byte {
	dst = append(dst, Version, byte(p.ILPType))
	dst = oer.AppendVarUint(dst, p.Sequence)
	dst = oer.AppendVarUint(dst, p.PrepareAmount)
	dst = oer.AppendVarUint(dst, uint64(len(p.Frames)))
	var contents []byte
	for _, f := range p.Frames {
		contents = f.appendContents(contents[:0])
		dst = append(dst, byte(f.Type()))
		dst = oer.AppendVarOctetString(dst, contents)
	}
	return dst
}

// MarshalBinary returns the plaintext encoding of p.
func (p *Packet) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, 64)), nil
}

// DecodePacket reads a plaintext STREAM packet. Frames of unknown types
// are skipped and octets after the last frame (junk data, §5.2) are
// ignored. Byte fields alias b.
func DecodePacket(b []byte) (*Packet, error) {
	r := oer.NewReader(b)
	v, err := r.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, oer.FieldError("version", err))
	}
	if v != Version {
		return nil, fmt.Errorf("%w: version %d", ErrInvalidPacket, v)
	}
	t, err := r.Uint8()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, oer.FieldError("ILP packet type", err))
	}
	p := &Packet{ILPType: ilp.Type(t)}
	if p.ILPType != ilp.TypePrepare && p.ILPType != ilp.TypeFulfill && p.ILPType != ilp.TypeReject {
		return nil, fmt.Errorf("%w: ILP packet type %d", ErrInvalidPacket, t)
	}
	if p.Sequence, err = r.VarUint(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, oer.FieldError("sequence", err))
	}
	if p.PrepareAmount, err = r.VarUint(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, oer.FieldError("prepare amount", err))
	}
	n, err := r.VarUint()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidPacket, oer.FieldError("frame count", err))
	}
	// Each frame takes at least two octets: refuse counts the input cannot
	// hold before allocating for them.
	if n > uint64(r.Len()/2) {
		return nil, fmt.Errorf("%w: %d frames in %d octets", ErrInvalidPacket, n, r.Len())
	}
	p.Frames = make([]Frame, 0, n)
	for i := uint64(0); i < n; i++ {
		ft, err := r.Uint8()
		if err != nil {
			return nil, fmt.Errorf("%w: frame %d: %w", ErrInvalidPacket, i, err)
		}
		c, err := r.VarOctetString()
		if err != nil {
			return nil, fmt.Errorf("%w: frame %d: %w", ErrInvalidPacket, i, err)
		}
		f, ok, err := decodeFrame(FrameType(ft), c)
		if err != nil {
			return nil, fmt.Errorf("%w: frame %d (type %#x): %w", ErrInvalidPacket, i, ft, err)
		}
		if ok {
			p.Frames = append(p.Frames, f)
		}
	}
	return p, nil
}

// Keys are the per-connection keys derived from a shared secret (§5.1.2,
// §6): the AES-256-GCM encryption key and the HMAC key fulfillments are
// derived with.
type Keys struct {
	Encryption  [32]byte
	Fulfillment [32]byte
	aead        cipher.AEAD
}

var (
	encryptionString  = []byte("ilp_stream_encryption")
	fulfillmentString = []byte("ilp_stream_fulfillment")
)

// NewKeys derives the keys from a 32-octet shared secret:
// HMAC-SHA256(secret, "ilp_stream_encryption") and
// HMAC-SHA256(secret, "ilp_stream_fulfillment").
func NewKeys(sharedSecret []byte) (*Keys, error) {
	if len(sharedSecret) != 32 {
		return nil, ErrSecret
	}
	k := &Keys{}
	copy(k.Encryption[:], hmacSHA256(sharedSecret, encryptionString))
	copy(k.Fulfillment[:], hmacSHA256(sharedSecret, fulfillmentString))
	block, err := aes.NewCipher(k.Encryption[:])
	if err != nil {
		return nil, fmt.Errorf("creating AES cipher: %w", err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return k, nil
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// Seal encrypts plaintext under a fresh random IV into the STREAM envelope
// IV ‖ tag ‖ ciphertext.
func (k *Keys) Seal(plaintext []byte) ([]byte, error) {
	out := make([]byte, Overhead+len(plaintext), Overhead+len(plaintext)+tagSize)
	if _, err := rand.Read(out[:ivSize]); err != nil {
		return nil, fmt.Errorf("reading random IV: %w", err)
	}
	// GCM appends the tag after the ciphertext; STREAM puts it first.
	sealed := k.aead.Seal(out[Overhead:Overhead], out[:ivSize], plaintext, nil)
	copy(out[ivSize:Overhead], sealed[len(plaintext):])
	return out[:Overhead+len(plaintext)], nil
}

// Open decrypts a STREAM envelope.
func (k *Keys) Open(data []byte) ([]byte, error) {
	if len(data) < Overhead {
		return nil, ErrDecrypt
	}
	buf := make([]byte, 0, len(data)-ivSize)
	buf = append(buf, data[Overhead:]...)
	buf = append(buf, data[ivSize:Overhead]...)
	pt, err := k.aead.Open(buf[:0], data[:ivSize], buf, nil)
	if err != nil {
		return nil, ErrDecrypt
	}
	return pt, nil
}

// SealPacket encodes and encrypts p.
func (k *Keys) SealPacket(p *Packet) ([]byte, error) {
	return k.Seal(p.AppendBinary(make([]byte, 0, 64)))
}

// OpenPacket decrypts and decodes a STREAM packet.
func (k *Keys) OpenPacket(data []byte) (*Packet, error) {
	pt, err := k.Open(data)
	if err != nil {
		return nil, err
	}
	return DecodePacket(pt)
}

// FulfillmentFor returns the fulfillment of a Prepare carrying data (§6.3):
// HMAC-SHA256(fulfillment key, data).
func (k *Keys) FulfillmentFor(data []byte) [32]byte {
	var f [32]byte
	copy(f[:], hmacSHA256(k.Fulfillment[:], data))
	return f
}

// ConditionFor returns the execution condition of a fulfillable Prepare
// carrying data (§6.2): SHA-256 of its fulfillment.
func (k *Keys) ConditionFor(data []byte) [32]byte {
	f := k.FulfillmentFor(data)
	return sha256.Sum256(f[:])
}
