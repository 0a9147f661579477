// Package qr owns the QR data of the switch: the EMVCo merchant-presented
// (MPM) TLV layout the switch prints on every code, its CRC-16/CCITT-FALSE
// seal, the merchant account information templates (the Electrum template
// carries the tranId), and the PNG rendering of a payload.
//
// Encode builds a payload from typed fields for one of the three schemes of
// the Electrum interface; Decode parses any payload strictly (structure, CRC)
// and leniently (which optional fields are present), and TranID reads the
// golden thread out of a scanned code. PNG is the only place in the project
// that imports a QR image library.
//
// The package is a leaf: it imports nothing of this project. Lengths in the
// TLV layout count characters (Unicode code points), not bytes; the CRC is
// computed over the UTF-8 bytes.
package qr
