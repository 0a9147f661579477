package qr

// crcTable holds CRC-16/CCITT-FALSE (poly 0x1021, MSB first) for every
// value of the high byte, so the checksum costs one lookup per byte.
var crcTable = func() (t [256]uint16) {
	for i := range t {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x1021
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}()

// CRC16 returns the CRC-16/CCITT-FALSE of b (poly 0x1021, init 0xFFFF, no
// reflection, no final xor), the checksum EMVCo puts in tag 63. For a
// payload it is taken over the UTF-8 bytes of everything before the CRC
// value, "6304" included. It does not allocate.
func CRC16(b []byte) uint16 { return crcUpdate(0xFFFF, b) }

func crcUpdate(crc uint16, b []byte) uint16 {
	for _, c := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^c]
	}
	return crc
}

func crcUpdateString(crc uint16, s string) uint16 {
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crcTable[byte(crc>>8)^s[i]]
	}
	return crc
}

const upperHex = "0123456789ABCDEF"

// appendCRCHex appends crc as four upper-case hexadecimal digits.
func appendCRCHex(dst []byte, crc uint16) []byte {
	return append(dst, upperHex[crc>>12], upperHex[crc>>8&0xF], upperHex[crc>>4&0xF], upperHex[crc&0xF])
}

// parseCRCHex reads four hexadecimal digits of either case.
func parseCRCHex(s string) (uint16, bool) {
	if len(s) != 4 {
		return 0, false
	}
	var v uint16
	for i := 0; i < 4; i++ {
		c := s[i]
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint16(d)
	}
	return v, true
}
