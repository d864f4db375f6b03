package enrollment

import (
	"errors"

	"github.com/zdps/zdps/pkg/enrollment/check"
	"github.com/zdps/zdps/pkg/enrollment/firmware"
)

// validateFirmwarePolicy validates an enrollment's or a group's
// firmwarePolicy (package firmware) and reports a refusal as a
// ValidationError under "firmwarePolicy".
func validateFirmwarePolicy(p *firmware.Policy) error {
	if p == nil {
		return nil
	}
	err := p.Validate()
	if fe, ok := errors.AsType[*firmware.FieldError](err); ok {
		return check.Prefixed("firmwarePolicy", &ValidationError{Field: fe.Field, Reason: fe.Reason})
	}
	return err
}
