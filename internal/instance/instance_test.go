package instance

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"

	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

func TestBootstrapIsStableAndConcurrentSafe(t *testing.T) {
	ctx := context.Background()
	s := store.New(memory.New(), nil)
	const n = 20
	got := make([]*Instance, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in, err := Bootstrap(ctx, s, Config{HostName: "localhost:8443"})
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = in
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	first := got[0]
	if !regexp.MustCompile(`^0ne[0-9A-F]{8}$`).MatchString(first.Settings.IDScope) {
		t.Fatalf("ID scope %q is not 0ne + 8 hex", first.Settings.IDScope)
	}
	for i, in := range got {
		if in.Settings.IDScope != first.Settings.IDScope || in.ConnectionString != first.ConnectionString {
			t.Fatalf("bootstrap %d disagrees: %q vs %q", i, in.Settings.IDScope, first.Settings.IDScope)
		}
	}
	for _, r := range enrollment.AllRights {
		if !first.Owner.HasRight(r) {
			t.Errorf("owner policy lacks %s", r)
		}
	}
	again, err := Bootstrap(ctx, s, Config{HostName: "localhost:8443", IDScope: "0neIGNORED"})
	if err != nil {
		t.Fatal(err)
	}
	if again.Settings.IDScope != first.Settings.IDScope {
		t.Fatalf("a restart changed the ID scope")
	}
}

func TestWriteSecretFileMode(t *testing.T) {
	dir := t.TempDir()
	if err := WriteSecretFile(dir, "s", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "s"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestKEKSaltIsSharedThroughTheStore(t *testing.T) {
	ctx := context.Background()
	b := memory.New()
	const n = 10
	salts := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := KEKSalt(ctx, b, nil)
			if err != nil {
				t.Error(err)
			}
			salts[i] = s
		}()
	}
	wg.Wait()
	for i, s := range salts {
		if len(s) != 16 || string(s) != string(salts[0]) {
			t.Fatalf("replica %d got salt %x, replica 0 %x", i, s, salts[0])
		}
	}
}
