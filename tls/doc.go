// Package tlsconfig owns every *tls.Config of qrswitch: the server side of
// the HTTPS listener (certificate loading, hot reload without dropping
// connections, optional mutual TLS), the client side used to call partners
// (which roots to trust, optional client certificate), development
// certificates persisted on disk, and throw-away in-memory certificates for
// tests.
//
// # Policy
//
// Every config built here goes through [Harden], so servers and clients share
// one floor:
//
//   - TLS 1.2 minimum; TLS 1.3 is negotiated whenever the peer speaks it,
//     because Go always picks the highest common version. TLS 1.0 and 1.1 are
//     refused: they lack AEAD suites and are deprecated by RFC 8996.
//   - For TLS 1.2 only ECDHE key exchange with AEAD ciphers (AES-GCM,
//     ChaCha20-Poly1305): ECDHE gives forward secrecy, which static RSA key
//     exchange lacks, and AEAD avoids the padding-oracle history of CBC.
//     TLS 1.3 suites are all AEAD and not configurable in Go.
//   - Key exchange over X25519 or P-256, plus their hybrid post-quantum forms
//     (X25519MLKEM768, SecP256r1MLKEM768), which protect recorded traffic
//     against a future quantum attacker while staying at least as strong as
//     the classical curve inside them.
//
// # Server certificates
//
// [NewServer] loads a certificate and key from files and serves them through
// GetCertificate from an atomically swapped pointer. [Server.Reload] swaps in
// the files' current contents (cmd calls it on SIGHUP) and [Server.Watch]
// polls the files and reloads when they change; Watch blocks, so its caller
// owns the goroutine and stops it through the context. Handshakes in flight
// and established connections keep the certificate they started with; a
// failed reload keeps the old certificate.
//
// Serve [Server.Config] with http.Server.ServeTLS(l, "", "") or
// ListenAndServeTLS("", ""). Do not add entries to its Certificates: Go
// consults GetCertificate only when Certificates is empty or the client sent
// a server name, so a static entry would shadow reloads for clients that dial
// an IP address. For the same reason httptest.Server.StartTLS, which installs
// its own certificate when Certificates is empty, does not serve a
// [Server]'s certificate; tests use [NewEphemeral] instead.
//
// # Mutual TLS
//
// With a client CA file the server asks for client certificates. HTTP
// handlers find the verified client in r.TLS; [VerifiedClient] returns it and
// never an unverified certificate.
//
// # Development certificates
//
// [OpenDevCA] keeps a development CA in a directory (ca.pem, ca-key.pem) and
// [DevCA.Issue] keeps a leaf signed by it, so a developer can run
// curl --cacert var/tls/ca.pem against the switch across restarts.
// [IsDevCertificate] lets production configuration refuse such a
// certificate.
//
// # Tests
//
// [NewEphemeral] makes an in-memory CA, a server config and a client config
// that trusts it, so a test anywhere in the project starts a real TLS server
// in one call. Nothing is written to disk.
//
// It imports only the standard library.
package tlsconfig
