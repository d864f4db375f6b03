//go:build awskms

package cakms_test

func init() { builtTags["awskms"] = true }
