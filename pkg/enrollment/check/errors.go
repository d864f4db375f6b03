package check

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInvalid is wrapped by every validation and decoding error of this
// package, so the API layer maps all of them to one 400 answer with
// errors.Is, and shows the message (which names the field) to the caller.
var ErrInvalid = errors.New("invalid request")

// ValidationError says which field of a document is invalid and why. Field
// is a JSON path in wire spelling ("attestation.symmetricKey.primaryKey",
// "iotHubs[2]"); it is empty when the problem is the document as a whole
// (for example malformed JSON).
type ValidationError struct {
	Field  string
	Reason string
}

// Error is a message meant for the operator who sent the document.
func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

// Unwrap lets callers test any validation failure with
// errors.Is(err, ErrInvalid).
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// Invalid is the refusal of field, for the reason format says.
func Invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Prefixed re-roots a ValidationError under a parent field, so nested
// validators can report paths relative to themselves.
func Prefixed(parent string, err error) error {
	var ve *ValidationError
	if err == nil || parent == "" || !errors.As(err, &ve) {
		return err
	}
	f := parent
	if ve.Field != "" {
		if strings.HasPrefix(ve.Field, "[") {
			f += ve.Field
		} else {
			f += "." + ve.Field
		}
	}
	return &ValidationError{Field: f, Reason: ve.Reason}
}

// StrictUnmarshal decodes exactly one JSON value, refusing unknown fields
// and trailing data.
func StrictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("unexpected data after the JSON value")
	}
	return nil
}

// Decode is StrictUnmarshal whose errors are ValidationErrors (DecodeError).
func Decode(b []byte, v any) error {
	if err := StrictUnmarshal(b, v); err != nil {
		return DecodeError(err)
	}
	return nil
}

// DecodeError turns an encoding/json error into a ValidationError whose
// message tells the sender where the problem is. encoding/json has no typed
// error for unknown fields, so that one is recognised by its message; the
// result is the same ErrInvalid either way.
func DecodeError(err error) error {
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		return ve
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return Invalid("", "empty body: a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Invalid("", "malformed JSON: the document ends early")
	case errors.As(err, &syn):
		return Invalid("", "malformed JSON at byte offset %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ):
		field := typ.Field
		return Invalid(field, "must be %s, not a JSON %s (at byte offset %d)", jsonKind(typ.Type.Kind().String()), typ.Value, typ.Offset)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if name, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return Invalid(strings.Trim(name, `"`), "unknown field")
	}
	return Invalid("", "%s", msg)
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "slice", "array":
		return "an array"
	case "struct", "map", "ptr", "pointer":
		return "an object"
	}
	return "of another type"
}
