// Package hdkey owns the payment addresses of the cryptopay rail: BIP-32
// extended public keys (Base58Check "xpub"/"tpub" serialisation, public
// child derivation) and the Ethereum addresses of the keys derived from
// them (Keccak-256, EIP-55 checksummed).
//
// The switch holds only an extended public key; whoever holds the matching
// private key (the retailer's wallet, kept elsewhere) controls the funds.
// A public key can derive only non-hardened children, so hardened indexes
// are refused, and an extended private key is refused outright rather than
// stored. Typically the configured key is the neutered account key at
// m/44'/60'/0'/0 and payment i gets child i.
package hdkey

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/crypto/ripemd160" // deprecated for new designs, but BIP-32 fingerprints are defined with it
)

// HardenedOffset is the first hardened child index (written i' or iH).
const HardenedOffset uint32 = 0x80000000

// Version bytes of serialised extended keys (BIP-32).
const (
	VersionMainPublic  uint32 = 0x0488B21E // xpub
	VersionMainPrivate uint32 = 0x0488ADE4 // xprv
	VersionTestPublic  uint32 = 0x043587CF // tpub
	VersionTestPrivate uint32 = 0x04358394 // tprv
)

// serializedLen is the length of a serialised extended key before its
// four checksum bytes: version 4, depth 1, fingerprint 4, child 4, chain
// code 32, key 33.
const serializedLen = 78

// Errors of parsing and derivation. The returned errors wrap one of these
// with the detail.
var (
	// ErrMalformed: not a Base58Check extended key (alphabet, length,
	// checksum, or a depth that contradicts the parent fields).
	ErrMalformed = errors.New("hdkey: malformed extended key")
	// ErrPrivateKey: an extended private key was given where the switch
	// takes only the public one.
	ErrPrivateKey = errors.New("hdkey: extended private key refused, configure the extended public key (xpub)")
	// ErrVersion: version bytes of neither an xpub nor a tpub.
	ErrVersion = errors.New("hdkey: unknown extended key version")
	// ErrPublicKey: the key bytes are not a compressed secp256k1 point.
	ErrPublicKey = errors.New("hdkey: invalid public key")
	// ErrHardened: a hardened child needs the parent's private key.
	ErrHardened = errors.New("hdkey: hardened child index needs the private key, only non-hardened indexes (below 2^31) derive from a public key")
	// ErrInvalidChild: the index yields no valid key (probability below
	// 2^-127); BIP-32 says to skip to the next index.
	ErrInvalidChild = errors.New("hdkey: child index yields an invalid key, use the next index")
	// ErrDepth: the key is at depth 255 and has no children.
	ErrDepth = errors.New("hdkey: maximum depth reached")
)

// ExtendedKey is a BIP-32 extended public key: a public key and a chain
// code, with the place in the tree it was serialised with. It is immutable
// and safe for concurrent use.
type ExtendedKey struct {
	version   uint32
	depth     uint8
	parentFP  uint32
	child     uint32
	chainCode [32]byte
	key       [33]byte // compressed point
	pub       *secp256k1.PublicKey
}

// Parse decodes a serialised extended public key ("xpub…" or "tpub…").
func Parse(s string) (*ExtendedKey, error) {
	raw, err := decodeBase58(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if len(raw) != serializedLen+4 {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrMalformed, len(raw), serializedLen+4)
	}
	payload := raw[:serializedLen]
	if sum := checksum(payload); [4]byte(raw[serializedLen:]) != sum {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrMalformed)
	}
	k := &ExtendedKey{
		version:  binary.BigEndian.Uint32(payload[0:4]),
		depth:    payload[4],
		parentFP: binary.BigEndian.Uint32(payload[5:9]),
		child:    binary.BigEndian.Uint32(payload[9:13]),
	}
	copy(k.chainCode[:], payload[13:45])
	copy(k.key[:], payload[45:78])
	switch k.version {
	case VersionMainPublic, VersionTestPublic:
	case VersionMainPrivate, VersionTestPrivate:
		return nil, ErrPrivateKey
	default:
		return nil, fmt.Errorf("%w: %08x", ErrVersion, k.version)
	}
	if k.depth == 0 && (k.parentFP != 0 || k.child != 0) {
		return nil, fmt.Errorf("%w: depth 0 with parent fingerprint %08x and child %d", ErrMalformed, k.parentFP, k.child)
	}
	if k.key[0] != secp256k1.PubKeyFormatCompressedEven && k.key[0] != secp256k1.PubKeyFormatCompressedOdd {
		return nil, fmt.Errorf("%w: prefix %02x, want 02 or 03", ErrPublicKey, k.key[0])
	}
	k.pub, err = secp256k1.ParsePubKey(k.key[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrPublicKey, err)
	}
	return k, nil
}

// String serialises k in Base58Check, as Parse reads it.
func (k *ExtendedKey) String() string {
	buf := make([]byte, 0, serializedLen+4)
	buf = binary.BigEndian.AppendUint32(buf, k.version)
	buf = append(buf, k.depth)
	buf = binary.BigEndian.AppendUint32(buf, k.parentFP)
	buf = binary.BigEndian.AppendUint32(buf, k.child)
	buf = append(buf, k.chainCode[:]...)
	buf = append(buf, k.key[:]...)
	sum := checksum(buf)
	return encodeBase58(append(buf, sum[:]...))
}

// Child derives the non-hardened child i of k (BIP-32 CKDpub).
func (k *ExtendedKey) Child(i uint32) (*ExtendedKey, error) {
	if i >= HardenedOffset {
		return nil, fmt.Errorf("%w: index %d is %d'", ErrHardened, i, i-HardenedOffset)
	}
	if k.depth == 255 {
		return nil, ErrDepth
	}
	mac := hmac.New(sha512.New, k.chainCode[:])
	mac.Write(k.key[:])
	mac.Write(binary.BigEndian.AppendUint32(nil, i))
	sum := mac.Sum(nil)

	var tweak secp256k1.ModNScalar
	if overflow := tweak.SetByteSlice(sum[:32]); overflow {
		return nil, fmt.Errorf("%w: index %d", ErrInvalidChild, i)
	}
	var point, parent, childPoint secp256k1.JacobianPoint
	secp256k1.ScalarBaseMultNonConst(&tweak, &point)
	k.pub.AsJacobian(&parent)
	secp256k1.AddNonConst(&point, &parent, &childPoint)
	if childPoint.Z.IsZero() {
		return nil, fmt.Errorf("%w: index %d", ErrInvalidChild, i)
	}
	childPoint.ToAffine()
	pub := secp256k1.NewPublicKey(&childPoint.X, &childPoint.Y)

	c := &ExtendedKey{
		version:  k.version,
		depth:    k.depth + 1,
		parentFP: k.Fingerprint(),
		child:    i,
		pub:      pub,
	}
	copy(c.chainCode[:], sum[32:])
	copy(c.key[:], pub.SerializeCompressed())
	return c, nil
}

// Derive follows a relative path of non-hardened indexes, such as "0/7"
// or "m/0/7" (the "m/" names k itself). A hardened step (7' or 7h) is
// refused with ErrHardened.
func (k *ExtendedKey) Derive(path string) (*ExtendedKey, error) {
	path = strings.TrimPrefix(strings.TrimSpace(path), "m")
	path = strings.TrimPrefix(path, "/")
	cur := k
	if path == "" {
		return cur, nil
	}
	for _, step := range strings.Split(path, "/") {
		if strings.HasSuffix(step, "'") || strings.HasSuffix(step, "h") || strings.HasSuffix(step, "H") {
			return nil, fmt.Errorf("%w: step %q of %q", ErrHardened, step, path)
		}
		i, err := strconv.ParseUint(step, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("parsing step %q of path %q: %w", step, path, err)
		}
		if cur, err = cur.Child(uint32(i)); err != nil {
			return nil, err
		}
	}
	return cur, nil
}

// Address returns the Ethereum address of child i of k: the address that
// receives payment i.
func (k *ExtendedKey) Address(i uint32) (Address, error) {
	c, err := k.Child(i)
	if err != nil {
		return Address{}, err
	}
	return c.KeyAddress(), nil
}

// KeyAddress returns the Ethereum address of k's own public key.
func (k *ExtendedKey) KeyAddress() Address {
	return PublicKeyAddress(k.pub)
}

// PublicKey returns k's public key.
func (k *ExtendedKey) PublicKey() *secp256k1.PublicKey {
	return k.pub
}

// Version returns the version bytes k was serialised with.
func (k *ExtendedKey) Version() uint32 { return k.version }

// Depth returns k's depth in the tree: 0 for a master key.
func (k *ExtendedKey) Depth() uint8 { return k.depth }

// ParentFingerprint returns the fingerprint of k's parent, 0 for a master
// key.
func (k *ExtendedKey) ParentFingerprint() uint32 { return k.parentFP }

// ChildNumber returns the index k was derived with from its parent
// (hardened indexes include HardenedOffset).
func (k *ExtendedKey) ChildNumber() uint32 { return k.child }

// ChainCode returns k's chain code.
func (k *ExtendedKey) ChainCode() [32]byte { return k.chainCode }

// Fingerprint returns the first four bytes of HASH160 (RIPEMD-160 of
// SHA-256) of k's compressed public key, which k's children carry as their
// parent fingerprint.
func (k *ExtendedKey) Fingerprint() uint32 {
	s := sha256.Sum256(k.key[:])
	r := ripemd160.New()
	r.Write(s[:])
	return binary.BigEndian.Uint32(r.Sum(nil)[:4])
}
