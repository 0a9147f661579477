package wire

import (
	"bytes"
	"encoding/json"
	"maps"
)

// Details is ErrorDetail.detailMessage: free-form, but always a JSON object
// on the wire. The interface's Java model types it java.lang.Object and its
// Swagger document renders that as `type: object`, so clients generated from
// the document decode an object and fail on a string. The switch writes
// {"message": …} and, for a malformed request, {"message": …, "field": …};
// a partner's object is kept as it came, and a partner that sends a bare
// string or number has it kept under "message".
type Details map[string]any

// Detail returns Details with a message.
func Detail(message string) Details { return Details{"message": message} }

// FieldDetail returns Details naming the field a message is about.
func FieldDetail(field, message string) Details {
	d := Details{"message": message}
	if field != "" {
		d["field"] = field
	}
	return d
}

// Message returns the "message" entry, or "".
func (d Details) Message() string {
	s, _ := d["message"].(string)
	return s
}

// UnmarshalJSON accepts an object as it is, and any other JSON value
// (a partner's string, say) under "message". null leaves d nil.
func (d *Details) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*d = nil
		return nil
	}
	if len(b) > 0 && b[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		*d = m
		return nil
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*d = Details{"message": v}
	return nil
}

func (d Details) clone() Details {
	if d == nil {
		return nil
	}
	out := maps.Clone(d)
	for k, v := range out {
		switch v.(type) {
		case nil, string, float64, bool:
		default:
			var c any
			if b, err := json.Marshal(v); err == nil && json.Unmarshal(b, &c) == nil {
				out[k] = c
			}
		}
	}
	return out
}
