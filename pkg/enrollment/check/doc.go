// Package check holds the rules of single fields of the DPS wire form
// (IDs, host names, keys, webhook URLs, free-form JSON objects, the
// certificate text codec), strict JSON decoding, and the ValidationError
// every refusal is, wrapping ErrInvalid. Package enrollment validates its
// documents with it and re-exports what third parties call
// (enrollment.ErrInvalid and enrollment.ValidationError are these); it
// exists apart so that the domain types are not buried under the syntax
// of their fields. Standard library only.
package check
