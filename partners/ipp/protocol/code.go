package protocol

import "strconv"

// Code is an IPP code of the seed's section 9.
type Code int

// The codes of section 9 the rail sends or understands.
const (
	CodeOffer      Code = 600
	CodePending    Code = 610
	CodeApproved   Code = 620
	CodeReset      Code = 640
	CodeVoided     Code = 660
	CodeBlocked    Code = 661
	CodeAdvisory   Code = 662
	CodeUnexpected Code = 663

	CodeManifestNotFound Code = 701
	CodeManifestURL      Code = 702
	CodeSchemeDependency Code = 703

	CodeBadRequest         Code = 800
	CodeInvalidRelay       Code = 801
	CodeInvalidCredentials Code = 802
	CodeVerification       Code = 804
	CodeResetRefused       Code = 806
	CodeConflictStatus     Code = 809
	CodeConflictUnits      Code = 812

	CodeServerError       Code = 900
	CodeSchemeUnsupported Code = 901
	CodeInsufficientFunds Code = 907
	CodeAccountNotAuth    Code = 908
	CodeUserNotAuth       Code = 930
)

var statusText = map[Code]string{
	CodeOffer:              "Payment Offer",
	CodePending:            "Pending Decision",
	CodeApproved:           "Approved As-Is",
	CodeReset:              "Approved with Reset",
	CodeVoided:             "Voided",
	CodeBlocked:            "Voided/On blocked list",
	CodeAdvisory:           "Voided/Per Advisory",
	CodeUnexpected:         "Voided/Unexpected Offer",
	CodeManifestNotFound:   "Manifest Not Found/Invalid Format",
	CodeManifestURL:        "Manifest URL not Found/Invalid Declaration",
	CodeSchemeDependency:   "Ver_scheme dependency not found",
	CodeBadRequest:         "Bad Request",
	CodeInvalidRelay:       "Invalid Relay/User Not Found",
	CodeInvalidCredentials: "Invalid Credentials",
	CodeVerification:       "Verification Failed",
	CodeResetRefused:       "Reset not Acceptable",
	CodeConflictStatus:     "Conflict/Status",
	CodeConflictUnits:      "Conflict/Payment Units",
	CodeServerError:        "Server Error",
	CodeSchemeUnsupported:  "Ver_scheme not supported",
	CodeInsufficientFunds:  "Insufficient Funds",
	CodeAccountNotAuth:     "Account not Authorized",
	CodeUserNotAuth:        "User not Authorized",
}

// Status is the code's status text of section 9 ("" for a code the table
// leaves "to be specified").
func (c Code) Status() string { return statusText[c] }

// String is the code as answers and traces show it: "IPP 804".
func (c Code) String() string { return "IPP " + strconv.Itoa(int(c)) }

// Voided reports whether c is one of the voided decisions (660–699).
func (c Code) Voided() bool { return c >= 660 && c <= 699 }

// Decision reports whether c decides a payment (620–699).
func (c Code) Decision() bool { return c >= 620 && c <= 699 }

// Error reports whether c is an error (700–999).
func (c Code) Error() bool { return c >= 700 && c <= 999 }

// Recoverable reports whether an error answer may go away if the same
// notification is sent again later: manifest trouble (7xx, a brand may
// fix its page), and the verifier's catch-all 900. The notifier's own
// errors (8xx) and the verifier's refusals (901, 907, 908, 930) are final:
// repeating the same bytes cannot change them.
func (c Code) Recoverable() bool {
	return (c >= 700 && c <= 799) || c == CodeServerError
}
