package hdkey_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/ripemd160"

	"github.com/qrswitch/qrswitch/partners/cryptopay/ganachetest"
	"github.com/qrswitch/qrswitch/partners/cryptopay/hdkey"
)

const h = hdkey.HardenedOffset

// chainStep is one line of a BIP-32 test vector: the extended public key
// at path.
type chainStep struct {
	path []uint32
	xpub string
}

// The public keys of BIP-32 test vectors 1 and 2.
var (
	vector1Seed = "000102030405060708090a0b0c0d0e0f"
	vector1     = []chainStep{
		{nil, "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8"},
		{[]uint32{0 + h}, "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LHhwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw"},
		{[]uint32{0 + h, 1}, "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWbWMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"},
		{[]uint32{0 + h, 1, 2 + h}, "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5"},
		{[]uint32{0 + h, 1, 2 + h, 2}, "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV"},
		{[]uint32{0 + h, 1, 2 + h, 2, 1000000000}, "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy"},
	}
	vector2Seed = "fffcf9f6f3f0edeae7e4e1dedbd8d5d2cfccc9c6c3c0bdbab7b4b1aeaba8a5a29f9c999693908d8a8784817e7b7875726f6c696663605d5a5754514e4b484542"
	vector2     = []chainStep{
		{nil, "xpub661MyMwAqRbcFW31YEwpkMuc5THy2PSt5bDMsktWQcFF8syAmRUapSCGu8ED9W6oDMSgv6Zz8idoc4a6mr8BDzTJY47LJhkJ8UB7WEGuduB"},
		{[]uint32{0}, "xpub69H7F5d8KSRgmmdJg2KhpAK8SR3DjMwAdkxj3ZuxV27CprR9LgpeyGmXUbC6wb7ERfvrnKZjXoUmmDznezpbZb7ap6r1D3tgFxHmwMkQTPH"},
		{[]uint32{0, 2147483647 + h}, "xpub6ASAVgeehLbnwdqV6UKMHVzgqAG8Gr6riv3Fxxpj8ksbH9ebxaEyBLZ85ySDhKiLDBrQSARLq1uNRts8RuJiHjaDMBU4Zn9h8LZNnBC5y4a"},
		{[]uint32{0, 2147483647 + h, 1}, "xpub6DF8uhdarytz3FWdA8TvFSvvAh8dP3283MY7p2V4SeE2wyWmG5mg5EwVvmdMVCQcoNJxGoWaU9DCWh89LojfZ537wTfunKau47EL2dhHKon"},
		{[]uint32{0, 2147483647 + h, 1, 2147483646 + h}, "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL"},
		{[]uint32{0, 2147483647 + h, 1, 2147483646 + h, 2}, "xpub6FnCn6nSzZAw5Tw7cgR9bi15UV96gLZhjDstkXXxvCLsUXBGXPdSnLFbdpq8p9HmGsApME5hQTZ3emM2rnY5agb9rXpVGyy3bdW6EEgAtqt"},
	}
)

// TestVectorsPublicDerivation derives each non-hardened step of BIP-32
// vectors 1 and 2 from the parent's xpub given in the vector and compares
// with the child's xpub given there; hardened steps must be refused.
func TestVectorsPublicDerivation(t *testing.T) {
	for _, v := range []struct {
		name  string
		steps []chainStep
	}{{"vector 1", vector1}, {"vector 2", vector2}} {
		t.Run(v.name, func(t *testing.T) {
			for i, step := range v.steps {
				k, err := hdkey.Parse(step.xpub)
				if err != nil {
					t.Fatalf("Parse(%s) = %v", step.xpub, err)
				}
				if got := k.String(); got != step.xpub {
					t.Errorf("Parse(%s).String() = %s, want the same", step.xpub, got)
				}
				if int(k.Depth()) != len(step.path) {
					t.Errorf("Depth(%s) = %d, want %d", step.xpub, k.Depth(), len(step.path))
				}
				if len(step.path) > 0 && k.ChildNumber() != step.path[len(step.path)-1] {
					t.Errorf("ChildNumber(%s) = %d, want %d", step.xpub, k.ChildNumber(), step.path[len(step.path)-1])
				}
				if i+1 == len(v.steps) {
					break
				}
				next := v.steps[i+1]
				idx := next.path[len(next.path)-1]
				child, err := k.Child(idx)
				if idx >= h {
					if !errors.Is(err, hdkey.ErrHardened) {
						t.Errorf("Child(%d') of %s = %v, want ErrHardened", idx-h, step.xpub, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("Child(%d) of %s: %v", idx, step.xpub, err)
				}
				if got := child.String(); got != next.xpub {
					t.Errorf("Child(%d) of %s = %s, want %s", idx, step.xpub, got, next.xpub)
				}
				if child.ParentFingerprint() != k.Fingerprint() {
					t.Errorf("Child(%d).ParentFingerprint() = %08x, want %08x", idx, child.ParentFingerprint(), k.Fingerprint())
				}
			}
		})
	}
}

// TestVectorsPrivateDerivation checks the tests' own private derivation
// (used below for ganache's wallet) against the vectors, hardened steps
// included.
func TestVectorsPrivateDerivation(t *testing.T) {
	for _, v := range []struct {
		seed  string
		steps []chainStep
	}{{vector1Seed, vector1}, {vector2Seed, vector2}} {
		seed, _ := hex.DecodeString(v.seed)
		for _, step := range v.steps {
			if got := masterKey(seed).derive(t, step.path...).neuter(); got != step.xpub {
				t.Errorf("private derivation of %v = %s, want %s", step.path, got, step.xpub)
			}
		}
	}
}

// TestGanacheAccounts derives ganache's deterministic accounts from the
// xpub of m/44'/60'/0'/0 (worked out here from its mnemonic) with the
// production code and compares them with the accounts ganache reports.
func TestGanacheAccounts(t *testing.T) {
	node := ganachetest.Start(t, ganachetest.Options{})
	seed := pbkdf2.Key([]byte(ganachetest.Mnemonic), []byte("mnemonic"), 2048, 64, sha512.New)
	xpub := masterKey(seed).derive(t, 44+h, 60+h, 0+h, 0).neuter()
	k, err := hdkey.Parse(xpub)
	if err != nil {
		t.Fatalf("Parse(%s) = %v", xpub, err)
	}
	if len(node.Accounts) != 10 {
		t.Fatalf("ganache reports %d accounts, want 10", len(node.Accounts))
	}
	for i, want := range node.Accounts {
		got, err := k.Address(uint32(i))
		if err != nil {
			t.Fatalf("Address(%d): %v", i, err)
		}
		if got != want {
			t.Errorf("Address(%d) = %s, want %s (eth_accounts)", i, got, want)
		}
	}
	// The documented first account, checksummed.
	if got, _ := k.Address(0); got.String() != "0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1" {
		t.Errorf("Address(0) = %s, want 0x90F8bf6A479f320ead074411a4B0e7944Ea8c9C1", got)
	}
	// Derive by path gives the same.
	if c, err := k.Derive("m/7"); err != nil || c.KeyAddress() != node.Accounts[7] {
		t.Errorf("Derive(m/7) = %v, %v, want %s", c, err, node.Accounts[7])
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want error
	}{
		// BIP-32 test vector 5.
		{"pubkey version / prvkey mismatch", "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6LBpB85b3D2yc8sfvZU521AAwdZafEz7mnzBBsz4wKY5fTtTQBm", hdkey.ErrPublicKey},
		{"invalid pubkey prefix 04", "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Txnt3siSujt9RCVYsx4qHZGc62TG4McvMGcAUjeuwZdduYEvFn", hdkey.ErrPublicKey},
		{"invalid pubkey prefix 01", "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6N8ZMMXctdiCjxTNq964yKkwrkBJJwpzZS4HS2fxvyYUA4q2Xe4", hdkey.ErrPublicKey},
		{"zero depth with non-zero parent fingerprint", "xpub661no6RGEX3uJkY4bNnPcw4URcQTrSibUZ4NqJEw5eBkv7ovTwgiT91XX27VbEXGENhYRCf7hyEbWrR3FewATdCEebj6znwMfQkhRYHRLpJ", hdkey.ErrMalformed},
		{"zero depth with non-zero index", "xpub661MyMwAuDcm6CRQ5N4qiHKrJ39Xe1R1NyfouMKTTWcguwVcfrZJaNvhpebzGerh7gucBvzEQWRugZDuDXjNDRmXzSZe4c7mnTK97pTvGS8", hdkey.ErrMalformed},
		{"unknown extended key version", "DMwo58pR1QLEFihHiXPVykYB6fJmsTeHvyTp7hRThAtCX8CvYzgPcn8XnmdfHPmHJiEDXkTiJTVV9rHEBUem2mwVbbNfvT2MTcAqj3nesx8uBf9", hdkey.ErrVersion},
		{"invalid pubkey 020000…07", "xpub661MyMwAqRbcEYS8w7XLSVeEsBXy79zSzH1J8vCdxAZningWLdN3zgtU6Q5JXayek4PRsn35jii4veMimro1xefsM58PgBMrvdYre8QyULY", hdkey.ErrPublicKey},
		{"invalid checksum", "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHL", hdkey.ErrMalformed},
		// Private keys are refused, never stored.
		{"xprv of vector 1", "xprv9s21ZrQH143K3QTDL4LXw2F7HEK3wJUD2nW2nRk4stbPy6cq3jPPqjiChkVvvNKmPGJxWUtg6LnF5kejMRNNU3TGtRBeJgk33yuGBxrMPHi", hdkey.ErrPrivateKey},
		{"empty", "", hdkey.ErrMalformed},
		{"not base58", "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet0", hdkey.ErrMalformed},
		{"truncated", vector1[0].xpub[:100], hdkey.ErrMalformed},
		{"too long", strings.Repeat("x", 200), hdkey.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := hdkey.Parse(tc.in)
			if !errors.Is(err, tc.want) {
				t.Errorf("Parse(%s) = %v, %v, want %v", tc.in, k, err, tc.want)
			}
		})
	}
}

func TestHardenedRefused(t *testing.T) {
	k, err := hdkey.Parse(vector1[0].xpub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		do   func() error
	}{
		{"Child(2^31)", func() error { _, err := k.Child(h); return err }},
		{"Address(2^32-1)", func() error { _, err := k.Address(^uint32(0)); return err }},
		{"Derive(0/1')", func() error { _, err := k.Derive("0/1'"); return err }},
		{"Derive(m/5h)", func() error { _, err := k.Derive("m/5h"); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(); !errors.Is(err, hdkey.ErrHardened) {
				t.Errorf("%s = %v, want ErrHardened", tc.name, err)
			}
		})
	}
	if _, err := k.Derive("0/x"); err == nil {
		t.Errorf("Derive(0/x) = nil error, want one")
	}
}

func TestAddress(t *testing.T) {
	// EIP-55's own examples.
	for _, want := range []string{
		"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
		"0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
		"0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
		"0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
		"0x52908400098527886E0F7030069857D2E4169EE7",
		"0x8617E340B3D01FA5F11F306F4090FD50E238070D",
		"0xde709f2102306220921060314715629080e2fb77",
		"0x27b1fdb04752bbc536007a920d24acb045561c26",
	} {
		a, err := hdkey.ParseAddress(strings.ToLower(want))
		if err != nil {
			t.Fatalf("ParseAddress(%s) = %v", strings.ToLower(want), err)
		}
		if got := a.String(); got != want {
			t.Errorf("String(%s) = %s, want %s", strings.ToLower(want), got, want)
		}
		if b, err := hdkey.ParseAddress(want); err != nil || b != a {
			t.Errorf("ParseAddress(%s) = %s, %v, want %s", want, b, err, a)
		}
	}
	for _, tc := range []struct {
		in   string
		want error
	}{
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD", hdkey.ErrAddressChecksum},
		{"5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", hdkey.ErrAddress},
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeA", hdkey.ErrAddress},
		{"0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAgg", hdkey.ErrAddress},
	} {
		if a, err := hdkey.ParseAddress(tc.in); !errors.Is(err, tc.want) {
			t.Errorf("ParseAddress(%s) = %s, %v, want %v", tc.in, a, err, tc.want)
		}
	}
}

// privKey is an extended private key, for the tests only: production code
// never holds one.
type privKey struct {
	key, chainCode [32]byte
	depth          uint8
	parentFP       uint32
	child          uint32
}

func masterKey(seed []byte) privKey {
	mac := hmac.New(sha512.New, []byte("Bitcoin seed"))
	mac.Write(seed)
	sum := mac.Sum(nil)
	var k privKey
	copy(k.key[:], sum[:32])
	copy(k.chainCode[:], sum[32:])
	return k
}

func (k privKey) pub() []byte {
	return secp256k1.PrivKeyFromBytes(k.key[:]).PubKey().SerializeCompressed()
}

func (k privKey) derive(t *testing.T, path ...uint32) privKey {
	t.Helper()
	for _, i := range path {
		mac := hmac.New(sha512.New, k.chainCode[:])
		if i >= h {
			mac.Write([]byte{0})
			mac.Write(k.key[:])
		} else {
			mac.Write(k.pub())
		}
		mac.Write(binary.BigEndian.AppendUint32(nil, i))
		sum := mac.Sum(nil)
		var tweak, parent secp256k1.ModNScalar
		if tweak.SetByteSlice(sum[:32]) {
			t.Fatalf("derivation step %d: IL ≥ n", i)
		}
		parent.SetByteSlice(k.key[:])
		tweak.Add(&parent)
		if tweak.IsZero() {
			t.Fatalf("derivation step %d: zero key", i)
		}
		s := sha256.Sum256(k.pub())
		r := ripemd160.New()
		r.Write(s[:])
		next := privKey{depth: k.depth + 1, parentFP: binary.BigEndian.Uint32(r.Sum(nil)[:4]), child: i}
		next.key = tweak.Bytes()
		copy(next.chainCode[:], sum[32:])
		k = next
	}
	return k
}

// neuter serialises k's public half as an xpub.
func (k privKey) neuter() string {
	buf := binary.BigEndian.AppendUint32(nil, hdkey.VersionMainPublic)
	buf = append(buf, k.depth)
	buf = binary.BigEndian.AppendUint32(buf, k.parentFP)
	buf = binary.BigEndian.AppendUint32(buf, k.child)
	buf = append(buf, k.chainCode[:]...)
	buf = append(buf, k.pub()...)
	return hdkey.EncodeBase58Check(buf)
}
