// Package cakmstest starts real KMS backends for tests: a SoftHSM2 token
// and a swtpm TPM, each in the test's temporary directory. A missing tool
// fails the test with the command that installs it (scripts/test-setup.sh).
package cakmstest

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// PIN is the user PIN of the tokens SoftHSM creates.
const PIN = "1234"

// softHSMModules are where Debian and others install SoftHSM2's module.
var softHSMModules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/local/lib/softhsm/libsofthsm2.so",
}

// SoftHSM initialises a fresh SoftHSM2 token labelled "zdps" whose files
// live under the test's temporary directory, points SOFTHSM2_CONF at it
// (for this process and the processes it starts) and returns the KMS URI
// of the token, PIN included, and the token directory.
func SoftHSM(t testing.TB) (uri, tokenDir string) {
	t.Helper()
	util, err := exec.LookPath("softhsm2-util")
	if err != nil {
		t.Fatalf("softhsm2-util is not installed: run `make test-setup` (apt-get install softhsm2): %v", err)
	}
	module := ""
	for _, m := range softHSMModules {
		if _, err := os.Stat(m); err == nil {
			module = m
			break
		}
	}
	if module == "" {
		t.Fatalf("libsofthsm2.so not found in %v", softHSMModules)
	}
	dir := t.TempDir()
	tokenDir = filepath.Join(dir, "tokens")
	if err := os.Mkdir(tokenDir, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	if err := os.WriteFile(conf, []byte("directories.tokendir = "+tokenDir+"\nobjectstore.backend = file\nlog.level = ERROR\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	out, err := exec.Command(util, "--init-token", "--free", "--label", "zdps", "--pin", PIN, "--so-pin", "5678").CombinedOutput()
	if err != nil {
		t.Fatalf("softhsm2-util --init-token: %v\n%s", err, out)
	}
	return "pkcs11:module-path=" + module + ";token=zdps?pin-value=" + PIN, tokenDir
}

// SWTPM starts Debian's swtpm (SWTPMSocket) and returns the tpmkms URI of
// it (key blobs in a directory of their own) and swtpm's state directory.
func SWTPM(t testing.TB) (uri, stateDir string) {
	t.Helper()
	sock, stateDir := SWTPMSocket(t)
	blobs := filepath.Join(t.TempDir(), "tpmkms")
	return "tpmkms:device=" + sock + ";storage-directory=" + blobs, stateDir
}

// SWTPMSocket starts Debian's swtpm on a fresh state directory (a new,
// unprovisioned TPM) with its command channel on a UNIX socket, waits
// until it answers, and returns the socket and the state directory. swtpm
// is killed at the end of the test.
func SWTPMSocket(t testing.TB) (sock, stateDir string) {
	t.Helper()
	bin, err := exec.LookPath("swtpm")
	if err != nil {
		t.Fatalf("swtpm is not installed: run `make test-setup` (apt-get install swtpm): %v", err)
	}
	stateDir = t.TempDir()
	sock = filepath.Join(stateDir, "tpm.sock")
	cmd := exec.Command(bin, "socket", "--tpm2", "--tpmstate", "dir="+stateDir,
		"--server", "type=unixio,path="+sock, "--ctrl", "type=unixio,path="+filepath.Join(stateDir, "ctrl.sock"),
		"--flags", "not-need-init,startup-clear")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			return sock, stateDir
		}
		if i == 100 {
			t.Fatalf("swtpm did not start: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
