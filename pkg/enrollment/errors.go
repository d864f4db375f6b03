package enrollment

import "github.com/zdps/zdps/pkg/enrollment/check"

// ErrInvalid is wrapped by every validation and decoding error of this
// package, so the API layer maps all of them to one 400 answer with
// errors.Is, and shows the message (which names the field) to the caller.
// It is check.ErrInvalid.
var ErrInvalid = check.ErrInvalid

// ValidationError says which field of a document is invalid and why. Field
// is a JSON path in wire spelling ("attestation.symmetricKey.primaryKey",
// "iotHubs[2]"); it is empty when the problem is the document as a whole
// (for example malformed JSON). It is check.ValidationError.
type ValidationError = check.ValidationError
