package storebench

import (
	"log/slog"
	"testing"

	"github.com/zdps/zdps/allocation/hashed"
	"github.com/zdps/zdps/attestation/symmetric"
	"github.com/zdps/zdps/internal/provisioning"
	"github.com/zdps/zdps/internal/provisioning/port"
	"github.com/zdps/zdps/internal/provisioning/symkey"
	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/internal/store"
	"github.com/zdps/zdps/internal/store/memory"
	"github.com/zdps/zdps/pkg/enrollment"
)

// BenchmarkRegisterSealing is what sealing keys at rest costs a
// registration: the same group-key registration, without a CSR, on the
// memory backend (no I/O in the figure), with the store's secrets in the
// clear and sealed. The difference of ns/op is the cost per registration:
//
//	go test -run '^$' -bench RegisterSealing -benchtime 20000x -count 5 ./test/storebench
func BenchmarkRegisterSealing(b *testing.B) {
	box, err := sealed.New(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		opts []store.Option
	}{
		{"plain", nil},
		{"sealed", []store.Option{store.WithSealer(box)}},
	} {
		b.Run(mode.name, func(b *testing.B) {
			st := store.New(memory.New(), nil, mode.opts...)
			seed(b, st)
			att, err := symkey.NewAttestor(st, symmetric.Config{})
			if err != nil {
				b.Fatal(err)
			}
			svc, err := provisioning.New(provisioning.Config{
				Store:     st,
				Attestors: map[string]port.Attestor{enrollment.AttestationSymmetricKey: att},
				Allocator: hashed.New(),
				Logger:    slog.New(slog.DiscardHandler),
			})
			if err != nil {
				b.Fatal(err)
			}
			run(b, []*provisioning.Service{svc}, false, false)
		})
	}
}
