// Package wire holds the JSON messages of the Electrum QR payment interface
// (v1, base path /qr/v1) as the switch speaks them on both sides: retailers
// send them to the switch, and the electrum rail sends them to partners.
// Field names are the interface's, exactly. The package also validates
// incoming messages (every failure names the field) and masks secrets in
// message bodies before they reach a log or a trace.
//
// It is a leaf: it imports no package of this project.
package wire

import "encoding/json"

// Institution identifies a retailer, partner, client or settlement entity.
type Institution struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// MerchantName is the merchant's name and location as printed on slips.
type MerchantName struct {
	Name    string `json:"name"`
	City    string `json:"city"`
	Region  string `json:"region"`
	Country string `json:"country"`
}

// Merchant identifies the card acceptor.
type Merchant struct {
	MerchantType string       `json:"merchantType"`
	MerchantID   string       `json:"merchantId"`
	MerchantName MerchantName `json:"merchantName"`
}

// Originator is the point of sale a transaction started at.
type Originator struct {
	Institution Institution `json:"institution"`
	TerminalID  string      `json:"terminalId"`
	Merchant    Merchant    `json:"merchant"`
	OperatorID  string      `json:"operatorId,omitempty"`
	ChannelID   string      `json:"channelId,omitempty"`
}

// ThirdPartyIdentifier is another party's reference for the transaction.
type ThirdPartyIdentifier struct {
	InstitutionID         string `json:"institutionId"`
	TransactionIdentifier string `json:"transactionIdentifier,omitempty"`
}

// LedgerAmount is an amount in minor units of an ISO 4217 currency, given by
// its 3-digit numeric code ("710" is ZAR; R799.95 is 79995).
type LedgerAmount struct {
	Amount          int64  `json:"amount"`
	Currency        string `json:"currency"`
	LedgerIndicator string `json:"ledgerIndicator,omitempty"`
}

// Amounts are the amounts of a transaction.
type Amounts struct {
	RequestAmount     *LedgerAmount           `json:"requestAmount,omitempty"`
	ApprovedAmount    *LedgerAmount           `json:"approvedAmount,omitempty"`
	FeeAmount         *LedgerAmount           `json:"feeAmount,omitempty"`
	BalanceAmount     *LedgerAmount           `json:"balanceAmount,omitempty"`
	AdditionalAmounts map[string]LedgerAmount `json:"additionalAmounts,omitempty"`
}

// Tender is one way the customer paid, as reported by the partner.
type Tender struct {
	AccountType string        `json:"accountType,omitempty"`
	Amount      *LedgerAmount `json:"amount,omitempty"`
	CardNumber  string        `json:"cardNumber,omitempty"`
	Reference   string        `json:"reference,omitempty"`
	TenderType  string        `json:"tenderType,omitempty"`
}

// Transaction is the base of the interface's request and response messages.
type Transaction struct {
	ID                    string                 `json:"id"`
	Time                  string                 `json:"time"`
	Originator            *Originator            `json:"originator,omitempty"`
	Client                *Institution           `json:"client,omitempty"`
	SettlementEntity      *Institution           `json:"settlementEntity,omitempty"`
	Receiver              *Institution           `json:"receiver,omitempty"`
	ThirdPartyIdentifiers []ThirdPartyIdentifier `json:"thirdPartyIdentifiers"`
	SlipData              json.RawMessage        `json:"slipData,omitempty"`
	BasketRef             string                 `json:"basketRef,omitempty"`
	TranType              string                 `json:"tranType,omitempty"`
	SrcAccType            string                 `json:"srcAccType,omitempty"`
	DestAccType           string                 `json:"destAccType,omitempty"`
	Stan                  string                 `json:"stan,omitempty"`
	Rrn                   string                 `json:"rrn,omitempty"`
}

// QR code schemes a retailer may ask for.
const (
	SchemeEMVCo           = "EMVCO_MERCHANT"
	SchemePseudoEMVCo     = "PSEUDO_EMVCO_MERCHANT"
	SchemeElectrumMinimal = "ELECTRUM_MERCHANT_MINIMAL"
)

// QrProperties shape the QR code a retailer asks for.
type QrProperties struct {
	UUID               string        `json:"uuid,omitempty"`
	Value              *LedgerAmount `json:"value,omitempty"`
	OverPaymentAllowed *bool         `json:"overPaymentAllowed,omitempty"`
	PartPaymentAllowed *bool         `json:"partPaymentAllowed,omitempty"`
	ExpiryDate         string        `json:"expiryDate,omitempty"`
	SingleUse          *bool         `json:"singleUse,omitempty"`
	Scheme             string        `json:"scheme,omitempty"`
}

// CreateQrCodeRequest asks the switch for a QR code (createQrCode).
type CreateQrCodeRequest struct {
	ID                    string                 `json:"id"`
	Time                  string                 `json:"time"`
	Originator            *Originator            `json:"originator,omitempty"`
	Client                *Institution           `json:"client,omitempty"`
	ThirdPartyIdentifiers []ThirdPartyIdentifier `json:"thirdPartyIdentifiers,omitempty"`
	Rrn                   string                 `json:"rrn,omitempty"`
	Stan                  string                 `json:"stan,omitempty"`
	Amounts               *Amounts               `json:"amounts,omitempty"`
	Customer              json.RawMessage        `json:"customer,omitempty"`
	QrProperties          *QrProperties          `json:"qrProperties,omitempty"`
}

// CreateQrCodeResponse echoes the request with the QR code the switch issued.
type CreateQrCodeResponse struct {
	CreateQrCodeRequest
	TranID string `json:"tranId"`
	QrCode string `json:"qrCode"`
}

// ScanNotification tells the switch that a partner's customer scanned a QR
// code (notifyScan).
type ScanNotification struct {
	ID                    string                 `json:"id"`
	Time                  string                 `json:"time"`
	Partner               *Institution           `json:"partner,omitempty"`
	SettlementEntity      *Institution           `json:"settlementEntity,omitempty"`
	Receiver              *Institution           `json:"receiver,omitempty"`
	ThirdPartyIdentifiers []ThirdPartyIdentifier `json:"thirdPartyIdentifiers,omitempty"`
	Amounts               *Amounts               `json:"amounts,omitempty"`
	TranID                string                 `json:"tranId"`
	PartnerPaymentToken   string                 `json:"partnerPaymentToken,omitempty"`
}

// PaymentRequest asks for a payment against a QR code (pay).
type PaymentRequest struct {
	Transaction
	Amounts             *Amounts     `json:"amounts,omitempty"`
	TranID              string       `json:"tranId"`
	Partner             *Institution `json:"partner,omitempty"`
	PartnerPaymentToken string       `json:"partnerPaymentToken,omitempty"`
}

// PaymentResponse is a partner's approval of a payment.
type PaymentResponse struct {
	Transaction
	Partner             *Institution `json:"partner,omitempty"`
	Amounts             *Amounts     `json:"amounts,omitempty"`
	TranID              string       `json:"tranId,omitempty"`
	PartnerPaymentToken string       `json:"partnerPaymentToken,omitempty"`
	Tenders             []Tender     `json:"tenders,omitempty"`
}

// BasicAdvice is the base of confirmations and reversals.
type BasicAdvice struct {
	ID                    string                 `json:"id"`
	RequestID             string                 `json:"requestId"`
	Time                  string                 `json:"time"`
	ThirdPartyIdentifiers []ThirdPartyIdentifier `json:"thirdPartyIdentifiers"`
	Stan                  string                 `json:"stan,omitempty"`
	Rrn                   string                 `json:"rrn,omitempty"`
	Amounts               *Amounts               `json:"amounts,omitempty"`
	TranID                string                 `json:"tranId,omitempty"`
	Partner               *Institution           `json:"partner,omitempty"`
}

// PaymentConfirmation finalises an approved payment (confirmPayment).
type PaymentConfirmation struct {
	BasicAdvice
}

// Reversal reasons.
const (
	ReasonTimeout          = "TIMEOUT"
	ReasonCancelled        = "CANCELLED"
	ReasonResponseNotFinal = "RESPONSE_NOT_FINAL"
)

// PaymentReversal undoes a payment (reversePayment).
type PaymentReversal struct {
	BasicAdvice
	ReversalReason string `json:"reversalReason"`
}

// ErrorDetail is the body of every failure answer.
type ErrorDetail struct {
	ID                string  `json:"id"`
	OriginalID        string  `json:"originalId,omitempty"`
	ErrorType         string  `json:"errorType"`
	ErrorMessage      string  `json:"errorMessage"`
	DetailMessage     Details `json:"detailMessage,omitempty"`
	ProviderErrorCode string  `json:"providerErrorCode,omitempty"`
	ProviderErrorMsg  string  `json:"providerErrorMsg,omitempty"`
	ProviderRef       string  `json:"providerRef,omitempty"`
	TranID            string  `json:"tranId,omitempty"`
}

// Error types of ErrorDetail.
const (
	DuplicateRecord         = "DUPLICATE_RECORD"
	FormatError             = "FORMAT_ERROR"
	FunctionNotSupported    = "FUNCTION_NOT_SUPPORTED"
	GeneralError            = "GENERAL_ERROR"
	InvalidAmount           = "INVALID_AMOUNT"
	RoutingError            = "ROUTING_ERROR"
	TransactionNotSupported = "TRANSACTION_NOT_SUPPORTED"
	UnableToLocateRecord    = "UNABLE_TO_LOCATE_RECORD"
	UpstreamUnavailable     = "UPSTREAM_UNAVAILABLE"
	AccountAlreadySettled   = "ACCOUNT_ALREADY_SETTLED"
	InvalidMerchant         = "INVALID_MERCHANT"
	DoNotHonor              = "DO_NOT_HONOR"
	DeclinedByPartner       = "DECLINED_BY_PARTNER"
	DeclinedByAcquirer      = "DECLINED_BY_ACQUIRER"
	DeclinedByIssuer        = "DECLINED_BY_ISSUER"
	InsufficientFunds       = "INSUFFICIENT_FUNDS"
	InvalidCardNumber       = "INVALID_CARD_NUMBER"
	CardExpired             = "CARD_EXPIRED"
	InvalidTranID           = "INVALID_TRAN_ID"
	PartnerUnknown          = "PARTNER_UNKNOWN"
	NoScanReceived          = "NO_SCAN_RECEIVED"
	InvalidAccount          = "INVALID_ACCOUNT"
)

// ErrorTypes lists every error type of the interface.
var ErrorTypes = []string{
	DuplicateRecord, FormatError, FunctionNotSupported, GeneralError, InvalidAmount,
	RoutingError, TransactionNotSupported, UnableToLocateRecord, UpstreamUnavailable,
	AccountAlreadySettled, InvalidMerchant, DoNotHonor, DeclinedByPartner, DeclinedByAcquirer,
	DeclinedByIssuer, InsufficientFunds, InvalidCardNumber, CardExpired, InvalidTranID,
	PartnerUnknown, NoScanReceived, InvalidAccount,
}

// IsErrorType reports whether s is one of the interface's error types.
func IsErrorType(s string) bool {
	for _, t := range ErrorTypes {
		if t == s {
			return true
		}
	}
	return false
}

// MaxErrorMessage is the longest errorMessage the interface allows.
const MaxErrorMessage = 40
