//go:build azurekms

package cakms_test

func init() { builtTags["azurekms"] = true }
