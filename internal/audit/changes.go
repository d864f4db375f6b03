package audit

import (
	"context"
	"errors"
	"strings"

	"github.com/zdps/zdps/internal/store"
)

type actorKey struct{}

// WithActor marks ctx as a management request by actor (a shared access
// policy's name, a signed-in user). Writes through a Changes backend
// under such a context are audited.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom is the actor WithActor set, "" when none.
func ActorFrom(ctx context.Context) string {
	a, _ := ctx.Value(actorKey{}).(string)
	return a
}

// managed names the resources whose changes are management changes.
var managed = map[store.Bucket]string{
	store.BucketEnrollments:    "enrollment",
	store.BucketGroups:         "group",
	store.BucketHubs:           "hub",
	store.BucketPolicies:       "policy",
	store.BucketSettings:       "settings",
	store.BucketCACertificates: "cacertificate",
	store.BucketRegistrations:  "registration",
	// Edge sites (internal/sites; named here, not imported, to keep the
	// trail below the use cases).
	store.Bucket("sites"): "site",
}

// Changes wraps a backend so that every write a management request makes
// to a managed collection (enrollments, groups, hubs, policies, settings,
// CA certificates, registration records) records an event in the same
// transaction: "{resource}.create|update|delete", the actor, the key and
// the ETags before and after. Nothing escapes: a use case added later is
// audited without remembering to. Writes under a context without an
// actor (the registration pipeline, background jobs) pass through.
// Values are never looked at, so no secret reaches the trail.
func Changes(b store.Backend, rec interface {
	Record(ctx context.Context, tx store.Tx, e Event) error
}) store.Backend {
	return &changes{Backend: b, rec: rec}
}

type changes struct {
	store.Backend
	rec interface {
		Record(ctx context.Context, tx store.Tx, e Event) error
	}
}

func (c *changes) Update(ctx context.Context, fn func(store.Tx) error) error {
	actor := ActorFrom(ctx)
	if actor == "" {
		return c.Backend.Update(ctx, fn)
	}
	return c.Backend.Update(ctx, func(tx store.Tx) error {
		return fn(&changesTx{Tx: tx, rec: c.rec, actor: actor})
	})
}

// Unwrap is the wrapped backend, for its optional capabilities.
func (c *changes) Unwrap() store.Backend { return c.Backend }

type changesTx struct {
	store.Tx
	rec interface {
		Record(ctx context.Context, tx store.Tx, e Event) error
	}
	actor string
}

func (t *changesTx) before(ctx context.Context, b store.Bucket, key string) (string, error) {
	it, err := t.Tx.Get(ctx, b, key)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	}
	return it.ETag, nil
}

func (t *changesTx) record(ctx context.Context, kind, verb, key, before, after string) error {
	e := Event{Action: kind + "." + verb, Outcome: OutcomeSuccess, Actor: t.actor, Resource: kind + "/" + key, ETagBefore: before, ETagAfter: after}
	if kind == "registration" {
		e.RegistrationID = key
	}
	return t.rec.Record(ctx, t.Tx, e)
}

func (t *changesTx) Put(ctx context.Context, b store.Bucket, key string, value []byte, cond store.Condition) (string, error) {
	kind, ok := managed[b]
	if !ok {
		return t.Tx.Put(ctx, b, key, value, cond)
	}
	before, err := t.before(ctx, b, key)
	if err != nil {
		return "", err
	}
	etag, err := t.Tx.Put(ctx, b, key, value, cond)
	if err != nil {
		return "", err
	}
	verb := "update"
	if before == "" {
		verb = "create"
	}
	return etag, t.record(ctx, kind, verb, strings.Clone(key), before, etag)
}

func (t *changesTx) Delete(ctx context.Context, b store.Bucket, key string, cond store.Condition) error {
	kind, ok := managed[b]
	if !ok {
		return t.Tx.Delete(ctx, b, key, cond)
	}
	before, err := t.before(ctx, b, key)
	if err != nil {
		return err
	}
	if err := t.Tx.Delete(ctx, b, key, cond); err != nil {
		return err
	}
	return t.record(ctx, kind, "delete", key, before, "")
}
