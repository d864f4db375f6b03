package cmdutil

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// ApplyEnvAndFile fills every flag the user did not set on the command line
// from the environment (ZDPS_ + the flag name in upper snake case) or, failing
// that, from the optional JSON config file (an object of flag names to
// values). Precedence: flag > environment > file > default.
func ApplyEnvAndFile(fs *pflag.FlagSet, file string) error {
	fromFile := map[string]any{}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := json.Unmarshal(b, &fromFile); err != nil {
			return fmt.Errorf("config file %s: %w", file, err)
		}
		for k := range fromFile {
			if fs.Lookup(k) == nil {
				return fmt.Errorf("config file %s: unknown setting %q", file, k)
			}
		}
	}
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			err = setFlag(fs, f.Name, v, "environment variable "+envName(f.Name))
			return
		}
		if v, ok := fromFile[f.Name]; ok {
			var s string
			switch v := v.(type) {
			case string:
				s = v
			default:
				b, _ := json.Marshal(v)
				s = string(b)
			}
			err = setFlag(fs, f.Name, s, "config file setting "+f.Name)
		}
	})
	return err
}

func setFlag(fs *pflag.FlagSet, name, value, from string) error {
	if f := fs.Lookup(name); f != nil && f.Value.Type() == "stringSlice" {
		value = strings.Trim(value, "[]")
		value = strings.ReplaceAll(value, `"`, "")
	}
	if err := fs.Set(name, value); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return nil
}

// envName maps a flag name to its environment variable: data-dir → ZDPS_DATA_DIR.
func envName(flag string) string {
	return "ZDPS_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// DataDirOf is the root's --data-dir, else $ZDPS_DATA_DIR, else the
// default: for the commands outside the management ones (zdps ca init,
// zdps ca rotate), which have no Globals.
func DataDirOf(cmd *cobra.Command) string {
	if f := cmd.Flag("data-dir"); f != nil && f.Value.String() != "" {
		return f.Value.String()
	}
	if v := os.Getenv(EnvDataDir); v != "" {
		return v
	}
	return DefaultDataDir
}
