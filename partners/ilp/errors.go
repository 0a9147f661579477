package ilp

// ErrorCode is a three-character ILP error code (IL-RFC 27 §Error Codes):
// a class letter (F final, T temporary, R relative) and two digits.
type ErrorCode string

// The error codes IL-RFC 27 names.
const (
	F00BadRequest                    ErrorCode = "F00"
	F01InvalidPacket                 ErrorCode = "F01"
	F02Unreachable                   ErrorCode = "F02"
	F03InvalidAmount                 ErrorCode = "F03"
	F04InsufficientDestinationAmount ErrorCode = "F04"
	F05WrongCondition                ErrorCode = "F05"
	F06UnexpectedPayment             ErrorCode = "F06"
	F07CannotReceive                 ErrorCode = "F07"
	F08AmountTooLarge                ErrorCode = "F08"
	F99ApplicationError              ErrorCode = "F99"
	T00InternalError                 ErrorCode = "T00"
	T01PeerUnreachable               ErrorCode = "T01"
	T02PeerBusy                      ErrorCode = "T02"
	T03ConnectorBusy                 ErrorCode = "T03"
	T04InsufficientLiquidity         ErrorCode = "T04"
	T05RateLimited                   ErrorCode = "T05"
	T99ApplicationError              ErrorCode = "T99"
	R00TransferTimedOut              ErrorCode = "R00"
	R01InsufficientSourceAmount      ErrorCode = "R01"
	R02InsufficientTimeout           ErrorCode = "R02"
	R99ApplicationError              ErrorCode = "R99"
)

var codeNames = map[ErrorCode]string{
	F00BadRequest:                    "Bad Request",
	F01InvalidPacket:                 "Invalid Packet",
	F02Unreachable:                   "Unreachable",
	F03InvalidAmount:                 "Invalid Amount",
	F04InsufficientDestinationAmount: "Insufficient Destination Amount",
	F05WrongCondition:                "Wrong Condition",
	F06UnexpectedPayment:             "Unexpected Payment",
	F07CannotReceive:                 "Cannot Receive",
	F08AmountTooLarge:                "Amount Too Large",
	F99ApplicationError:              "Application Error",
	T00InternalError:                 "Internal Error",
	T01PeerUnreachable:               "Peer Unreachable",
	T02PeerBusy:                      "Peer Busy",
	T03ConnectorBusy:                 "Connector Busy",
	T04InsufficientLiquidity:         "Insufficient Liquidity",
	T05RateLimited:                   "Rate Limited",
	T99ApplicationError:              "Application Error",
	R00TransferTimedOut:              "Transfer Timed Out",
	R01InsufficientSourceAmount:      "Insufficient Source Amount",
	R02InsufficientTimeout:           "Insufficient Timeout",
	R99ApplicationError:              "Application Error",
}

// Valid reports whether c has the form of an ILP error code: F, T or R and
// two digits. Codes the RFC does not name (F42) are valid but unnamed.
func (c ErrorCode) Valid() bool {
	if len(c) != 3 {
		return false
	}
	switch c[0] {
	case 'F', 'T', 'R':
	default:
		return false
	}
	return c[1] >= '0' && c[1] <= '9' && c[2] >= '0' && c[2] <= '9'
}

// Name returns the RFC's name for c, the class name ("Final Error",
// "Temporary Error", "Relative Error") for an unnamed code of a known
// class, and "" otherwise.
func (c ErrorCode) Name() string {
	if n, ok := codeNames[c]; ok {
		return n
	}
	if !c.Valid() {
		return ""
	}
	switch c[0] {
	case 'F':
		return "Final Error"
	case 'T':
		return "Temporary Error"
	default:
		return "Relative Error"
	}
}

// Final reports whether c is a final (F) error: retrying unchanged fails.
func (c ErrorCode) Final() bool { return c.Valid() && c[0] == 'F' }

// Temporary reports whether c is a temporary (T) error: retrying may work.
func (c ErrorCode) Temporary() bool { return c.Valid() && c[0] == 'T' }

// Relative reports whether c is a relative (R) error: the margin of money
// or time was too small.
func (c ErrorCode) Relative() bool { return c.Valid() && c[0] == 'R' }

// String returns the code followed by its name, "F02 Unreachable".
func (c ErrorCode) String() string {
	if n := c.Name(); n != "" {
		return string(c) + " " + n
	}
	return string(c)
}
