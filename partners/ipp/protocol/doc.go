// Package protocol owns the Inter-Entity Payment Protocol (IPP 0.1, seed
// 004) as both accountants speak it: the codes of section 9, notifications
// (sections 5.1–5.3) parsed and validated and written in canonical form,
// the verifier's JSON replies (section 7), the payment states of section 3
// and their legal transitions, manifests (section 2) declared on brands'
// pages (section 1), discovered and cached with an expiry, and the two
// verification schemes of section 6 (query verification of a record's
// SHA1 at the notifier's accountant, and RSA signatures checked against the
// brand's certificate). The rail (package ipp) and the counterpart
// simulator (package ippsim) share it. Where the seed is silent, the
// decision is in docs/ipp.md.
package protocol
