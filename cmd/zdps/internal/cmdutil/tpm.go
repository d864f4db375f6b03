package cmdutil

import (
	"strings"

	"github.com/google/go-tpm/tpm2/transport/linuxudstpm"

	"github.com/zdps/zdps/pkg/device"
)

// OpenTPM opens the TPM named by spec, a device path or unix:PATH (a
// simulator speaking the raw TPM command protocol on a Unix socket), and
// prepares its EK and SRK: zdps device register --tpm and zdps serve
// --upstream-tpm.
func OpenTPM(spec string) (*device.TPM, error) {
	if path, ok := strings.CutPrefix(spec, "unix:"); ok {
		t, err := linuxudstpm.Open(path)
		if err != nil {
			return nil, err
		}
		d, err := device.NewTPM(t)
		if err != nil {
			_ = t.Close()
			return nil, err
		}
		return d, nil
	}
	return device.OpenTPM(spec)
}
