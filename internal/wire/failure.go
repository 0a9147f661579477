package wire

import (
	"errors"
	"fmt"
)

// Failure is an answer that is not a success, in the interface's terms: an
// HTTP status and the ErrorDetail to send, plus a private cause for the
// logs that is never sent.
type Failure struct {
	Status int
	Detail *ErrorDetail
	Cause  error
}

func (f *Failure) Error() string {
	s := fmt.Sprintf("%d %s: %s", f.Status, f.Detail.ErrorType, f.Detail.ErrorMessage)
	if f.Cause != nil {
		s += ": " + f.Cause.Error()
	}
	return s
}

// Unwrap returns the private cause.
func (f *Failure) Unwrap() error { return f.Cause }

// Fail builds a Failure with a fresh ErrorDetail.
func Fail(status int, errorType, msg, originalID, tranID string) *Failure {
	return &Failure{Status: status, Detail: NewErrorDetail(errorType, msg, originalID, tranID)}
}

// FormatFailure turns a validation error into 400 FORMAT_ERROR naming the
// field in errorMessage and in detailMessage.field.
func FormatFailure(err error, originalID string) *Failure {
	f := Fail(400, FormatError, "Invalid request", originalID, "")
	var fe *FieldError
	if errors.As(err, &fe) && fe.Field != "" {
		f.Detail.ErrorMessage = ShortMessage("Invalid field " + fe.Field)
		f.Detail.DetailMessage = FieldDetail(fe.Field, err.Error())
		return f
	}
	f.Detail.DetailMessage = Detail(err.Error())
	return f
}
