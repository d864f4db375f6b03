package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/zdps/zdps/internal/store"
)

// Buckets of the trail.
const (
	// BucketPending holds recorded events not yet chained, by event ID.
	BucketPending store.Bucket = "audit-pending"
	// BucketChain holds chained entries by zero-padded sequence number.
	BucketChain store.Bucket = "audit-chain"
	// BucketState holds the signed head, the checkpoint and the lease.
	BucketState store.Bucket = "audit-state"
)

const (
	keyHead       = "head"
	keyCheckpoint = "checkpoint"
	keyLease      = "lease"
	// sealBatch bounds one sealing transaction.
	sealBatch = 1000
	// DefaultSealInterval is how often Run seals.
	DefaultSealInterval = time.Second
)

// Signer signs the chain's head and checkpoints, and checks them. The
// key must not be readable by whoever can write the store, or an
// attacker could re-chain and re-sign an edited trail.
type Signer interface {
	Sign(msg []byte) ([]byte, error)
	Verify(msg, sig []byte) error
}

// Config configures a Log. Backend and Signer are required.
type Config struct {
	Backend store.Backend
	Signer  Signer
	// Owner names this replica in the sealing lease; a random name when
	// empty.
	Owner string
	// Now is the clock; time.Now when nil.
	Now    func() time.Time
	Logger *slog.Logger
}

// Log records, seals, verifies, lists and prunes the trail.
type Log struct {
	b      store.Backend
	signer Signer
	owner  string
	now    func() time.Time
	log    *slog.Logger
}

// New builds a Log.
func New(cfg Config) (*Log, error) {
	if cfg.Backend == nil || cfg.Signer == nil {
		return nil, errors.New("audit: Backend and Signer are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Owner == "" {
		cfg.Owner = NewID(cfg.Now())[16:]
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Log{b: cfg.Backend, signer: cfg.Signer, owner: cfg.Owner, now: cfg.Now, log: cfg.Logger}, nil
}

// Record writes e in tx, the transaction of the change it describes. It
// fills in ID and Time when they are empty. Only a fresh key is written:
// Record never conflicts with another transaction.
func (l *Log) Record(ctx context.Context, tx store.Tx, e Event) error {
	if e.Time.IsZero() {
		e.Time = l.now()
	}
	e.Time = e.Time.UTC()
	if e.ID == "" {
		e.ID = NewID(e.Time)
	}
	if err := validate(&e); err != nil {
		return err
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return fmt.Errorf("audit: encode event: %w", err)
	}
	if _, err := tx.Put(ctx, BucketPending, e.ID, b, store.Condition{IfNoneMatch: true}); err != nil {
		return fmt.Errorf("audit: record %s: %w", e.Action, err)
	}
	return nil
}

// Entry is one chained event.
type Entry struct {
	Seq uint64 `json:"seq"`
	// Prev is the hex SHA-256 of the previous entry (zeros for the first).
	Prev string `json:"prev"`
	// Hash is hex SHA-256 over the sequence, Prev and Event as stored.
	Hash  string          `json:"hash"`
	Event json.RawMessage `json:"event"`
}

// signedPoint is the head and the checkpoint: a sequence, its hash, when,
// and the signature over all three.
type signedPoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
	Sig  []byte    `json:"sig"`
}

type lease struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"`
}

var zeroHash = hex.EncodeToString(make([]byte, sha256.Size))

func seqKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// entryHash is the hash of an entry: domain, sequence, predecessor, event.
func entryHash(seq uint64, prev string, event []byte) string {
	h := sha256.New()
	h.Write([]byte("zdps-audit-v1\n"))
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], seq)
	h.Write(n[:])
	h.Write([]byte(prev))
	h.Write(event)
	return hex.EncodeToString(h.Sum(nil))
}

func pointMessage(kind string, p *signedPoint) []byte {
	return []byte("zdps-audit-" + kind + "\n" + strconv.FormatUint(p.Seq, 10) + "\n" + p.Hash + "\n" + p.Time.UTC().Format(time.RFC3339Nano))
}

func (l *Log) sign(kind string, p *signedPoint) error {
	sig, err := l.signer.Sign(pointMessage(kind, p))
	if err != nil {
		return fmt.Errorf("audit: sign %s: %w", kind, err)
	}
	p.Sig = sig
	return nil
}

func getJSON(ctx context.Context, tx store.Tx, b store.Bucket, key string, v any) (bool, error) {
	it, err := tx.Get(ctx, b, key)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(it.Value, v); err != nil {
		return false, fmt.Errorf("audit: %s/%s is not valid: %w", b, key, err)
	}
	return true, nil
}

func putJSON(ctx context.Context, tx store.Tx, b store.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.Put(ctx, b, key, raw, store.Condition{})
	return err
}

// Seal chains up to one batch of pending events, if this replica holds
// (or takes) the sealing lease, and returns how many it chained.
func (l *Log) Seal(ctx context.Context, leaseFor time.Duration) (int, error) {
	// The batch is found by a read-only scan, so that the writing
	// transaction reads only the keys it moves (point reads): a range read
	// there would, on PostgreSQL, conflict with every registration
	// inserting its event meanwhile. Most rounds find nothing and write
	// (and sync) nothing.
	var batch []store.Item
	if err := l.b.View(ctx, func(tx store.Tx) error {
		var err error
		batch, err = tx.Scan(ctx, BucketPending, "", "", sealBatch)
		return err
	}); err != nil || len(batch) == 0 {
		return 0, err
	}
	var n int
	// A conditional transaction (store.Conditional): every key it writes
	// it read first (the lease, the head, each pending event) or writes
	// blindly (the chain entries), so a write is a compare-and-swap on the
	// read, and two sealers racing see one of them run again; on
	// PostgreSQL its writes then go out with the next read, one round trip
	// per event instead of three.
	reads := []store.Read{{Bucket: BucketState, Key: keyLease}, {Bucket: BucketState, Key: keyHead}}
	for _, b := range batch {
		reads = append(reads, store.Read{Bucket: BucketPending, Key: b.Key})
	}
	err := l.b.Update(store.Conditional(ctx), func(tx store.Tx) error {
		n = 0
		// Every key below in one round trip where the backend can.
		if err := store.Prefetch(ctx, tx, reads...); err != nil {
			return err
		}
		now := l.now().UTC()
		var ls lease
		if ok, err := getJSON(ctx, tx, BucketState, keyLease, &ls); err != nil {
			return err
		} else if ok && ls.Owner != l.owner && ls.Until.After(now) {
			return nil
		}
		if err := putJSON(ctx, tx, BucketState, keyLease, &lease{Owner: l.owner, Until: now.Add(leaseFor)}); err != nil {
			return err
		}
		head, err := l.headIn(ctx, tx)
		if err != nil {
			return err
		}
		for _, b := range batch {
			it, err := tx.Get(ctx, BucketPending, b.Key)
			if errors.Is(err, store.ErrNotFound) {
				continue // chained by a sealer whose lease had not lapsed yet
			}
			if err != nil {
				return err
			}
			seq := head.Seq + 1
			e := Entry{Seq: seq, Prev: head.Hash, Hash: entryHash(seq, head.Hash, it.Value), Event: it.Value}
			if err := putJSON(ctx, tx, BucketChain, seqKey(seq), &e); err != nil {
				return err
			}
			if err := tx.Delete(ctx, BucketPending, it.Key, store.Condition{}); err != nil {
				return err
			}
			head.Seq, head.Hash = seq, e.Hash
			n++
		}
		if n == 0 {
			return nil
		}
		head.Time = now
		if err := l.sign("head", head); err != nil {
			return err
		}
		return putJSON(ctx, tx, BucketState, keyHead, head)
	})
	if err != nil {
		n = 0
	}
	return n, err
}

// headIn is the stored head, or the checkpoint's point, or the genesis.
func (l *Log) headIn(ctx context.Context, tx store.Tx) (*signedPoint, error) {
	var h signedPoint
	ok, err := getJSON(ctx, tx, BucketState, keyHead, &h)
	if err != nil || ok {
		return &h, err
	}
	return &signedPoint{Hash: zeroHash}, nil
}

// Run seals every interval until ctx ends, draining a backlog without
// waiting between full batches.
func (l *Log) Run(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultSealInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := l.Seal(ctx, 3*interval)
		if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
			l.log.WarnContext(ctx, "audit: sealing failed; retrying", "error", err)
		}
		if n == sealBatch {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
