// Package stream owns STREAM (IL-RFC 29) as the switch's rails use it:
// the packet and every frame type, key derivation from the shared secret,
// the AES-256-GCM envelope and the fulfillment and condition derived from
// packet data (packet.go, frame.go); a stateless Receiver that credits a
// rail's durable Account idempotently and answers as STREAM senders expect
// (receiver.go); a Sender that pays one packet at a time, persists its
// progress through a callback and resumes without paying twice
// (sender.go); and a Server that derives per-payment addresses and shared
// secrets from one server secret (credentials.go).
//
// Only money is implemented: StreamData frames are decoded and ignored,
// streams other than 1 are not opened by the Sender, and connections are
// not kept in memory (a connection is whatever the Prepare, the secret and
// the Account say).
package stream
