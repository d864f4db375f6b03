package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/zdps/zdps/internal/sealed"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Secrets at rest. Documents that list secret fields (enrollment.Secret:
// symmetric keys, policy keys, webhook URLs) are stored with those fields
// sealed by a Sealer, at this boundary, so every reader and writer of a
// Collection (service API, pipeline, instance bootstrap) holds plaintext in
// memory and every backend holds ciphertext. A value is bound to
// "<bucket>\x00<key>\x00<field>", which names nothing specific to one store:
// a byte-for-byte copy (storecopy) opens under the same KEK.

// Sealer encrypts secret fields; internal/sealed.Box implements it.
type Sealer interface {
	// Seal returns the stored form of plaintext bound to ad.
	Seal(plaintext []byte, ad string) (string, error)
	// Open returns the plaintext of a stored form bound to ad, or an error
	// when it does not authenticate.
	Open(stored string, ad string) ([]byte, error)
}

var (
	// ErrNoSealer: a document holds sealed secrets but the store was built
	// without a Sealer (no key-encryption key).
	ErrNoSealer = errors.New("store: document holds encrypted secrets and no key-encryption key was given")
	// ErrUnsealable: a sealed secret does not open (another KEK, or the
	// stored value was altered or moved from another record).
	ErrUnsealable = errors.New("store: encrypted secret does not open")
)

// Option configures New.
type Option func(*options)

type options struct{ sealer Sealer }

// WithSealer makes the store seal documents' secret fields at rest. Without
// it secrets are written in the clear (tests, tools without a KEK) and a
// sealed one fails to decode with ErrNoSealer.
func WithSealer(s Sealer) Option { return func(o *options) { o.sealer = s } }

type secretHolder interface{ Secrets() []enrollment.Secret }

func secretAD(b Bucket, key, field string) string { return string(b) + "\x00" + key + "\x00" + field }

// secretValue reads and writes one secret, string or bytes, as text.
type secretValue struct{ enrollment.Secret }

func (s secretValue) get() string {
	if s.Bytes != nil {
		return string(*s.Bytes)
	}
	return *s.Value
}

func (s secretValue) set(v string) {
	if s.Bytes != nil {
		*s.Bytes = []byte(v)
		return
	}
	*s.Value = v
}

// sealSecrets replaces v's non-empty secrets with their sealed form and
// returns the function that puts the plaintext back. Every write seals
// afresh (new nonce), whatever the value looks like, so a plaintext that
// happened to resemble a sealed value still reads back as written.
func (c *Collection[T]) sealSecrets(key string, v T) (restore func(), err error) {
	h, ok := any(v).(secretHolder)
	if !ok || c.sealer == nil {
		return func() {}, nil
	}
	secrets := h.Secrets()
	plain := make([]string, len(secrets))
	for i, s := range secrets {
		plain[i] = secretValue{s}.get()
	}
	restore = func() {
		for i, s := range secrets {
			if s.Bytes != nil && plain[i] == "" {
				continue // keep nil as nil
			}
			secretValue{s}.set(plain[i])
		}
	}
	for i, s := range secrets {
		if plain[i] == "" {
			continue
		}
		sv, err := c.sealer.Seal([]byte(plain[i]), secretAD(c.bucket, key, s.Field))
		if err != nil {
			restore()
			return nil, fmt.Errorf("store: seal %s/%s %s: %w", c.bucket, key, s.Field, err)
		}
		secretValue{s}.set(sv)
	}
	return restore, nil
}

// openSecrets replaces v's sealed secrets with their plaintext and reports
// how many non-empty secrets were stored in the clear (a store written
// before sealing, or without a Sealer).
func (c *Collection[T]) openSecrets(key string, v T) (plaintext int, err error) {
	h, ok := any(v).(secretHolder)
	if !ok {
		return 0, nil
	}
	for _, s := range h.Secrets() {
		sv := secretValue{s}
		stored := sv.get()
		if !sealed.IsSealed(stored) {
			if stored != "" {
				plaintext++
			}
			continue
		}
		if c.sealer == nil {
			return 0, fmt.Errorf("%w (%s/%s %s)", ErrNoSealer, c.bucket, key, s.Field)
		}
		pt, err := c.sealer.Open(stored, secretAD(c.bucket, key, s.Field))
		if err != nil {
			return 0, fmt.Errorf("%w: %s/%s %s: %w", ErrUnsealable, c.bucket, key, s.Field, err)
		}
		sv.set(string(pt))
	}
	return plaintext, nil
}

// Sealed makes c seal its documents' secrets with s (nil: in the clear),
// for collections built outside New (Store.Sealer gives the store's). It
// returns c.
func (c *Collection[T]) Sealed(s Sealer) *Collection[T] {
	c.sealer = s
	return c
}

// Sealer is the store's Sealer, nil when it was built without one.
func (s *Store) Sealer() Sealer { return s.Enrollments.sealer }

// SealPlaintext re-writes every document of the collection that still
// holds a secret in the clear, with its secrets sealed and its ETag and
// timestamps unchanged (the content is the same; clients' If-Match stays
// valid). It works in transactions of batch documents (100 when batch <= 0),
// so a crash loses at most the batch in flight, and it skips sealed
// documents, so running it again, after a crash or not, finishes the job.
// progress, if set, is called after each committed batch.
func (c *Collection[T]) SealPlaintext(ctx context.Context, batch int, progress func(scanned, sealed int)) (scanned, sealedN int, err error) {
	if c.sealer == nil {
		return 0, 0, ErrNoSealer
	}
	if batch <= 0 {
		batch = 100
	}
	after := ""
	for {
		var n, s int
		var last string
		// fn may run more than once (retries, batching): it sets the
		// batch's results from scratch on each run.
		err := c.backend.Update(ctx, func(tx Tx) error {
			n, s, last = 0, 0, ""
			items, err := tx.Scan(ctx, c.bucket, "", after, batch)
			if err != nil {
				return err
			}
			for _, it := range items {
				n++
				last = it.Key
				wrote, err := c.sealItem(ctx, tx, it)
				if err != nil {
					return err
				}
				if wrote {
					s++
				}
			}
			return nil
		})
		if err != nil {
			return scanned, sealedN, fmt.Errorf("store: seal %s after %q: %w", c.bucket, after, err)
		}
		scanned += n
		sealedN += s
		if progress != nil && n > 0 {
			progress(scanned, sealedN)
		}
		if n < batch {
			return scanned, sealedN, nil
		}
		after = last
	}
}

func (c *Collection[T]) sealItem(ctx context.Context, tx Tx, it Item) (bool, error) {
	v := c.newT()
	if _, ok := any(v).(secretHolder); !ok {
		return false, nil
	}
	if err := json.Unmarshal(it.Value, v); err != nil {
		return false, fmt.Errorf("store: decode %s/%s: %w", c.bucket, it.Key, err)
	}
	plain, err := c.openSecrets(it.Key, v)
	if err != nil || plain == 0 {
		return false, err
	}
	if _, err := c.sealSecrets(it.Key, v); err != nil {
		return false, err
	}
	v.Version().ETag = "" // as Put encodes it: the ETag lives beside the value
	b, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("store: encode %s/%s: %w", c.bucket, it.Key, err)
	}
	if w, ok := tx.(RawWriter); ok {
		return true, w.PutRaw(ctx, c.bucket, it.Key, b, it.ETag)
	}
	// A backend that cannot keep the ETag (memory) gets a new one.
	_, err = tx.Put(ctx, c.bucket, it.Key, b, Condition{IfMatch: it.ETag})
	return true, err
}

// FreeSpaceScrubber is an optional capability of a Backend: overwriting
// the space that rewritten records left behind, where the plaintext a
// migration replaced could otherwise be read from the file (bbolt).
type FreeSpaceScrubber interface {
	// ScrubFreeSpace returns the number of pages it overwrote.
	ScrubFreeSpace(ctx context.Context) (int, error)
}

// BucketMigrations records the one-off data migrations that have completed,
// one key each, so later starts skip them.
const BucketMigrations Bucket = "migrations"

// migrationSecretsSealed is the key of the completed secrets migration.
const migrationSecretsSealed = "secrets-sealed-v1"

// SealSecrets is the startup step that seals the secrets of a store
// written before they were encrypted at rest (or by a zdps without a KEK):
// it runs SealPlaintext on every collection with secrets, logs the counts,
// then records its completion so later starts skip the scan. A crash
// halfway leaves no mark, and the next start finishes the job.
func (s *Store) SealSecrets(ctx context.Context, log *slog.Logger, batch int) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	done, err := s.migrated(ctx, migrationSecretsSealed)
	if err != nil || done {
		return err
	}
	start := time.Now()
	type job struct {
		bucket Bucket
		run    func(context.Context, int, func(int, int)) (int, int, error)
	}
	total := 0
	for _, j := range []job{
		{BucketEnrollments, s.Enrollments.SealPlaintext},
		{BucketGroups, s.Groups.SealPlaintext},
		{BucketPolicies, s.Policies.SealPlaintext},
	} {
		reported := 0
		progress := func(scanned, sealed int) {
			log.Debug("sealing secrets at rest", "bucket", string(j.bucket), "scanned", scanned, "sealed", sealed)
			// A large store takes a while (about 10,000 records a second
			// on bbolt): say so now and then, not per batch.
			if scanned-reported >= 10000 {
				reported = scanned
				log.Info("sealing secrets at rest, in progress", "bucket", string(j.bucket), "scanned", scanned, "sealed", sealed)
			}
		}
		scanned, sealed, err := j.run(ctx, batch, progress)
		if err != nil {
			return fmt.Errorf("sealing %s: %w (restart to resume; batches done so far are kept)", j.bucket, err)
		}
		total += sealed
		if sealed > 0 {
			log.Info("sealed plaintext secrets at rest", "bucket", string(j.bucket), "scanned", scanned, "sealed", sealed)
		}
	}
	// Before the mark, so that a crash after the last batch still scrubs
	// at the next start.
	if sc, ok := Unwrap(s.Backend).(FreeSpaceScrubber); ok {
		log.Info("overwriting the store's free space (once; a few seconds per GB of free space)")
		pages, err := sc.ScrubFreeSpace(ctx)
		if err != nil {
			return fmt.Errorf("sealing secrets: %w (restart to resume)", err)
		}
		log.Info("overwrote the store's free space, where replaced plaintext could remain", "pages", pages)
	}
	if err := s.markMigrated(ctx, migrationSecretsSealed, total); err != nil {
		return err
	}
	if total > 0 {
		// A backend that cannot scrub (PostgreSQL keeps dead rows until
		// vacuumed, and its WAL) still holds the old plaintext somewhere;
		// earlier backups hold it in any case.
		log.Warn("secrets at rest are sealed; earlier backups still hold the keys in the clear, and on PostgreSQL so do dead rows and WAL until VACUUM FULL and WAL recycling",
			"sealed_documents", total, "elapsed", time.Since(start).Round(time.Millisecond).String())
		return nil
	}
	log.Info("secrets at rest are sealed", "sealed_documents", total, "elapsed", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func (s *Store) migrated(ctx context.Context, name string) (bool, error) {
	var done bool
	err := s.Backend.View(ctx, func(tx Tx) error {
		_, err := tx.Get(ctx, BucketMigrations, name)
		switch {
		case err == nil:
			done = true
		case errors.Is(err, ErrNotFound):
		default:
			return err
		}
		return nil
	})
	return done, err
}

func (s *Store) markMigrated(ctx context.Context, name string, n int) error {
	b, err := json.Marshal(struct {
		CompletedAt time.Time `json:"completedAt"`
		Documents   int       `json:"documents"`
	}{s.Enrollments.now().UTC(), n})
	if err != nil {
		return err
	}
	return s.Backend.Update(ctx, func(tx Tx) error {
		_, err := tx.Put(ctx, BucketMigrations, name, b, Condition{})
		return err
	})
}
