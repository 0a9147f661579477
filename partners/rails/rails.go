// Package rails links every rail into a binary: importing it registers each
// rail with package partners. Add a blank import here when a rail is added.
package rails

import (
	// The native Electrum QR rail.
	_ "github.com/qrswitch/qrswitch/partners/electrum"
	// Merchant invoices over SPSP/ILP (seed 001).
	_ "github.com/qrswitch/qrswitch/partners/ilpinvoice"
	// Open Payments resource server paid over ILP STREAM (seed 000).
	_ "github.com/qrswitch/qrswitch/partners/openpayments"
	// The Inter-Entity Payment Protocol (seed 004).
	_ "github.com/qrswitch/qrswitch/partners/ipp"
	// ERC-20 token payments on an EVM chain (seed 003).
	_ "github.com/qrswitch/qrswitch/partners/cryptopay"
)
