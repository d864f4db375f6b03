//go:build cloudkms

package cakms_test

func init() { builtTags["cloudkms"] = true }
