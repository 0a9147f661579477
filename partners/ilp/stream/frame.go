package stream

import (
	"fmt"

	"github.com/qrswitch/qrswitch/partners/ilp/internal/oer"
)

// FrameType identifies a STREAM frame (IL-RFC 29 §5.3).
type FrameType uint8

// The frame types of IL-RFC 29, and StreamReceipt (0x17) from the STREAM
// receipts proposal, which ilp-protocol-stream and stream-receiver speak.
const (
	TypeConnectionClose           FrameType = 0x01
	TypeConnectionNewAddress      FrameType = 0x02
	TypeConnectionMaxData         FrameType = 0x03
	TypeConnectionDataBlocked     FrameType = 0x04
	TypeConnectionMaxStreamID     FrameType = 0x05
	TypeConnectionStreamIDBlocked FrameType = 0x06
	TypeConnectionAssetDetails    FrameType = 0x07
	TypeStreamClose               FrameType = 0x10
	TypeStreamMoney               FrameType = 0x11
	TypeStreamMaxMoney            FrameType = 0x12
	TypeStreamMoneyBlocked        FrameType = 0x13
	TypeStreamData                FrameType = 0x14
	TypeStreamMaxData             FrameType = 0x15
	TypeStreamDataBlocked         FrameType = 0x16
	TypeStreamReceipt             FrameType = 0x17
)

// ErrorCode says why a stream or connection closed (IL-RFC 29 §5.4).
type ErrorCode uint8

// The STREAM error codes.
const (
	NoError           ErrorCode = 0x01
	InternalError     ErrorCode = 0x02
	EndpointBusy      ErrorCode = 0x03
	FlowControlError  ErrorCode = 0x04
	StreamIDError     ErrorCode = 0x05
	StreamStateError  ErrorCode = 0x06
	FrameFormatError  ErrorCode = 0x07
	ProtocolViolation ErrorCode = 0x08
	ApplicationError  ErrorCode = 0x09
)

// String names the code.
func (c ErrorCode) String() string {
	names := [...]string{"", "NoError", "InternalError", "EndpointBusy", "FlowControlError", "StreamIdError",
		"StreamStateError", "FrameFormatError", "ProtocolViolation", "ApplicationError"}
	if int(c) < len(names) && c != 0 {
		return names[c]
	}
	return fmt.Sprintf("ErrorCode(%d)", uint8(c))
}

// Frame is one STREAM frame. The concrete types are the structs below,
// used by value.
type Frame interface {
	// Type reports the frame type.
	Type() FrameType
	appendContents(dst []byte) []byte
}

// ConnectionClose closes the connection (0x01).
type ConnectionClose struct {
	Code    ErrorCode
	Message string
}

// ConnectionNewAddress tells the other endpoint where to send packets
// (0x02). An empty SourceAddress is how @interledger/pay asks for asset
// details without offering an address.
type ConnectionNewAddress struct {
	SourceAddress string
}

// ConnectionMaxData is the connection-level data limit (0x03).
type ConnectionMaxData struct{ MaxOffset uint64 }

// ConnectionDataBlocked says the sender wants to exceed the data limit (0x04).
type ConnectionDataBlocked struct{ MaxOffset uint64 }

// ConnectionMaxStreamID is the largest stream ID accepted (0x05).
type ConnectionMaxStreamID struct{ MaxStreamID uint64 }

// ConnectionStreamIDBlocked says the sender wants more streams (0x06).
type ConnectionStreamIDBlocked struct{ MaxStreamID uint64 }

// ConnectionAssetDetails is the sending endpoint's asset (0x07).
type ConnectionAssetDetails struct {
	AssetCode  string
	AssetScale uint8
}

// StreamClose closes one stream (0x10).
type StreamClose struct {
	StreamID uint64
	Code     ErrorCode
	Message  string
}

// StreamMoney assigns Shares of the Prepare amount to a stream (0x11).
type StreamMoney struct {
	StreamID uint64
	Shares   uint64
}

// StreamMaxMoney is a stream's receive limit and total received, in the
// receiver's units (0x12). ReceiveMax wider than 64 bits decodes as
// math.MaxUint64 (§5.1.4).
type StreamMaxMoney struct {
	StreamID      uint64
	ReceiveMax    uint64
	TotalReceived uint64
}

// StreamMoneyBlocked says the sender wants to send more than allowed
// (0x13). SendMax wider than 64 bits decodes as math.MaxUint64.
type StreamMoneyBlocked struct {
	StreamID  uint64
	SendMax   uint64
	TotalSent uint64
}

// StreamData carries application data at Offset (0x14).
type StreamData struct {
	StreamID uint64
	Offset   uint64
	Data     []byte
}

// StreamMaxData is a stream's data limit (0x15).
type StreamMaxData struct {
	StreamID  uint64
	MaxOffset uint64
}

// StreamDataBlocked says the sender wants to exceed a stream's data limit
// (0x16).
type StreamDataBlocked struct {
	StreamID  uint64
	MaxOffset uint64
}

// StreamReceipt carries a signed receipt of the total received (0x17).
type StreamReceipt struct {
	StreamID uint64
	Receipt  []byte
}

// Type implementations.
func (ConnectionClose) Type() FrameType           { return TypeConnectionClose }
func (ConnectionNewAddress) Type() FrameType      { return TypeConnectionNewAddress }
func (ConnectionMaxData) Type() FrameType         { return TypeConnectionMaxData }
func (ConnectionDataBlocked) Type() FrameType     { return TypeConnectionDataBlocked }
func (ConnectionMaxStreamID) Type() FrameType     { return TypeConnectionMaxStreamID }
func (ConnectionStreamIDBlocked) Type() FrameType { return TypeConnectionStreamIDBlocked }
func (ConnectionAssetDetails) Type() FrameType    { return TypeConnectionAssetDetails }
func (StreamClose) Type() FrameType               { return TypeStreamClose }
func (StreamMoney) Type() FrameType               { return TypeStreamMoney }
func (StreamMaxMoney) Type() FrameType            { return TypeStreamMaxMoney }
func (StreamMoneyBlocked) Type() FrameType        { return TypeStreamMoneyBlocked }
func (StreamData) Type() FrameType                { return TypeStreamData }
func (StreamMaxData) Type() FrameType             { return TypeStreamMaxData }
func (StreamDataBlocked) Type() FrameType         { return TypeStreamDataBlocked }
func (StreamReceipt) Type() FrameType             { return TypeStreamReceipt }

func (f ConnectionClose) appendContents(b []byte) []byte {
	b = append(b, byte(f.Code))
	return oer.AppendVarOctetString(b, []byte(f.Message))
}
func (f ConnectionNewAddress) appendContents(b []byte) []byte {
	return oer.AppendVarOctetString(b, []byte(f.SourceAddress))
}
func (f ConnectionMaxData) appendContents(b []byte) []byte { return oer.AppendVarUint(b, f.MaxOffset) }
func (f ConnectionDataBlocked) appendContents(b []byte) []byte {
	return oer.AppendVarUint(b, f.MaxOffset)
}
func (f ConnectionMaxStreamID) appendContents(b []byte) []byte {
	return oer.AppendVarUint(b, f.MaxStreamID)
}
func (f ConnectionStreamIDBlocked) appendContents(b []byte) []byte {
	return oer.AppendVarUint(b, f.MaxStreamID)
}
func (f ConnectionAssetDetails) appendContents(b []byte) []byte {
	b = oer.AppendVarOctetString(b, []byte(f.AssetCode))
	return append(b, f.AssetScale)
}
func (f StreamClose) appendContents(b []byte) []byte {
	b = oer.AppendVarUint(b, f.StreamID)
	b = append(b, byte(f.Code))
	return oer.AppendVarOctetString(b, []byte(f.Message))
}
func (f StreamMoney) appendContents(b []byte) []byte {
	return oer.AppendVarUint(oer.AppendVarUint(b, f.StreamID), f.Shares)
}
func (f StreamMaxMoney) appendContents(b []byte) []byte {
	b = oer.AppendVarUint(b, f.StreamID)
	b = oer.AppendVarUint(b, f.ReceiveMax)
	return oer.AppendVarUint(b, f.TotalReceived)
}
func (f StreamMoneyBlocked) appendContents(b []byte) []byte {
	b = oer.AppendVarUint(b, f.StreamID)
	b = oer.AppendVarUint(b, f.SendMax)
	return oer.AppendVarUint(b, f.TotalSent)
}
func (f StreamData) appendContents(b []byte) []byte {
	b = oer.AppendVarUint(b, f.StreamID)
	b = oer.AppendVarUint(b, f.Offset)
	return oer.AppendVarOctetString(b, f.Data)
}
func (f StreamMaxData) appendContents(b []byte) []byte {
	return oer.AppendVarUint(oer.AppendVarUint(b, f.StreamID), f.MaxOffset)
}
func (f StreamDataBlocked) appendContents(b []byte) []byte {
	return oer.AppendVarUint(oer.AppendVarUint(b, f.StreamID), f.MaxOffset)
}
func (f StreamReceipt) appendContents(b []byte) []byte {
	return oer.AppendVarOctetString(oer.AppendVarUint(b, f.StreamID), f.Receipt)
}

// decodeFrame reads one frame's contents. ok is false for an unknown type,
// which the caller skips (§5.3: implementations MUST ignore them). Octets
// after the known fields are ignored, as the reference implementation
// ignores them, so later versions may extend a frame.
func decodeFrame(t FrameType, c []byte) (f Frame, ok bool, err error) {
	r := oer.NewReader(c)
	vu := func(field string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = r.VarUint()
		if err != nil {
			err = oer.FieldError(field, err)
		}
		return v
	}
	sat := func(field string) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = r.SaturatingVarUint()
		if err != nil {
			err = oer.FieldError(field, err)
		}
		return v
	}
	u8 := func(field string) uint8 {
		if err != nil {
			return 0
		}
		var v uint8
		v, err = r.Uint8()
		if err != nil {
			err = oer.FieldError(field, err)
		}
		return v
	}
	str := func(field string) []byte {
		if err != nil {
			return nil
		}
		var v []byte
		v, err = r.VarOctetString()
		if err != nil {
			err = oer.FieldError(field, err)
		}
		return v
	}
	switch t {
	case TypeConnectionClose:
		f = ConnectionClose{Code: ErrorCode(u8("error code")), Message: string(str("error message"))}
	case TypeConnectionNewAddress:
		f = ConnectionNewAddress{SourceAddress: string(str("source address"))}
	case TypeConnectionMaxData:
		f = ConnectionMaxData{MaxOffset: vu("max offset")}
	case TypeConnectionDataBlocked:
		f = ConnectionDataBlocked{MaxOffset: vu("max offset")}
	case TypeConnectionMaxStreamID:
		f = ConnectionMaxStreamID{MaxStreamID: vu("max stream id")}
	case TypeConnectionStreamIDBlocked:
		f = ConnectionStreamIDBlocked{MaxStreamID: vu("max stream id")}
	case TypeConnectionAssetDetails:
		code := string(str("asset code"))
		f = ConnectionAssetDetails{AssetCode: code, AssetScale: u8("asset scale")}
	case TypeStreamClose:
		id := vu("stream id")
		code := ErrorCode(u8("error code"))
		f = StreamClose{StreamID: id, Code: code, Message: string(str("error message"))}
	case TypeStreamMoney:
		id := vu("stream id")
		f = StreamMoney{StreamID: id, Shares: vu("shares")}
	case TypeStreamMaxMoney:
		id := vu("stream id")
		limit := sat("receive max")
		f = StreamMaxMoney{StreamID: id, ReceiveMax: limit, TotalReceived: vu("total received")}
	case TypeStreamMoneyBlocked:
		id := vu("stream id")
		limit := sat("send max")
		f = StreamMoneyBlocked{StreamID: id, SendMax: limit, TotalSent: vu("total sent")}
	case TypeStreamData:
		id := vu("stream id")
		off := vu("offset")
		f = StreamData{StreamID: id, Offset: off, Data: str("data")}
	case TypeStreamMaxData:
		id := vu("stream id")
		f = StreamMaxData{StreamID: id, MaxOffset: vu("max offset")}
	case TypeStreamDataBlocked:
		id := vu("stream id")
		f = StreamDataBlocked{StreamID: id, MaxOffset: vu("max offset")}
	case TypeStreamReceipt:
		id := vu("stream id")
		f = StreamReceipt{StreamID: id, Receipt: str("receipt")}
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return f, true, nil
}
