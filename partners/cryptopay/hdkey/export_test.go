package hdkey

// EncodeBase58Check serialises payload with its checksum, for the tests'
// private-key derivation.
func EncodeBase58Check(payload []byte) string {
	sum := checksum(payload)
	return encodeBase58(append(payload[:len(payload):len(payload)], sum[:]...))
}

// DecodeBase58 exposes the decoder to the fuzz test.
var DecodeBase58 = decodeBase58

// EncodeBase58 exposes the encoder to the fuzz test.
var EncodeBase58 = encodeBase58
