package importer

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zdps/zdps/internal/ctxtime"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/enrollment"
)

// Bulker is the one call the importer makes; *client.Client implements it.
// Errors follow package client's contract (client.IsTransient,
// *client.APIError).
type Bulker interface {
	BulkEnrollments(ctx context.Context, mode string, items []*enrollment.IndividualEnrollment) (*enrollment.BulkOperationResult, error)
}

// Progress receives completed work as it happens, from one goroutine.
type Progress interface {
	// Done reports rows finished (whatever their outcome) and the input
	// bytes they spanned.
	Done(rows int, bytes int64)
}

// Config configures one import.
type Config struct {
	// Client sends the batches.
	Client Bulker
	// Format of the input.
	Format Format
	// BaseDir resolves relative certificate paths in CSV input.
	BaseDir string
	// BatchSize is the number of enrollments per bulk call (>= 1).
	BatchSize int
	// Parallel is the number of bulk calls in flight (>= 1).
	Parallel int
	// Retries is how many times a transient failure of a batch (network
	// error, 429, 5xx) is retried before its rows are failed (>= 0).
	Retries int
	// Backoff is the wait before retry attempt n (1-based); nil means
	// exponential from 500ms to 30s with jitter. A server's Retry-After
	// wins when it is longer.
	Backoff func(attempt int) time.Duration
	// OpenFailed opens the failed-rows file; it is called at the first
	// failed row only, so a clean import leaves no file behind.
	OpenFailed func() (io.WriteCloser, error)
	// Progress, when set, is told about completed rows.
	Progress Progress
	// Now is the clock for the elapsed time; nil means time.Now.
	Now func() time.Time
}

// Summary is the outcome of an import.
type Summary struct {
	Read           int64         `json:"read"`
	Created        int64         `json:"created"`
	AlreadyPresent int64         `json:"alreadyPresent"`
	Failed         int64         `json:"failed"`
	Elapsed        time.Duration `json:"-"`
}

// RowsPerSecond is the import rate over the elapsed time.
func (s Summary) RowsPerSecond() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Read) / s.Elapsed.Seconds()
}

// String is the one-line summary the CLI prints.
func (s Summary) String() string {
	return fmt.Sprintf("read %d, created %d, already present %d, failed %d, elapsed %s, %.0f rows/s",
		s.Read, s.Created, s.AlreadyPresent, s.Failed, s.Elapsed.Round(time.Millisecond), s.RowsPerSecond())
}

// ErrAborted is wrapped by Run's error when the import stopped before the
// end of the input (the service refused the credentials, the context was
// cancelled). The summary still counts what was done.
var ErrAborted = errors.New("import aborted")

// outcome kinds.
type kind int

const (
	created kind = iota
	present
	failed
)

type result struct {
	r      *row
	kind   kind
	reason string
}

func (c *Config) validate() error {
	switch {
	case c.Client == nil:
		return errors.New("importer: no client")
	case c.BatchSize < 1:
		return fmt.Errorf("batch size must be at least 1, not %d", c.BatchSize)
	case c.Parallel < 1:
		return fmt.Errorf("parallel must be at least 1, not %d", c.Parallel)
	case c.Retries < 0:
		return fmt.Errorf("retries must not be negative, not %d", c.Retries)
	case c.Format != CSV && c.Format != JSONLines:
		return fmt.Errorf("unknown format %q", c.Format)
	}
	return nil
}

// Run imports every record of in. It returns an error when the import
// could not run to the end (bad header, unreadable input, refused
// credentials, cancelled context, failed-rows file not writable); rows that
// failed on their own are counted in the summary, not returned as an error.
func Run(ctx context.Context, cfg Config, in io.Reader) (Summary, error) {
	if err := cfg.validate(); err != nil {
		return Summary{}, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	start := now()

	var src source
	switch cfg.Format {
	case CSV:
		s, err := newCSVSource(in, cfg.BaseDir)
		if err != nil {
			return Summary{}, err
		}
		src = s
	case JSONLines:
		src = newJSONLSource(in)
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	batches := make(chan []*row, cfg.Parallel)
	results := make(chan []result, cfg.Parallel)

	snd := &sender{cfg: &cfg, abort: cancel}
	var workers sync.WaitGroup
	for range cfg.Parallel {
		workers.Go(func() {
			for b := range batches {
				results <- snd.send(ctx, b)
			}
		})
	}

	// The collector is the only writer of the summary and the failed file.
	var sum Summary
	rep := &report{cfg: &cfg, src: src}
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for rs := range results {
			var bytes int64
			for _, res := range rs {
				bytes += res.r.size
				switch res.kind {
				case created:
					sum.Created++
				case present:
					sum.AlreadyPresent++
				case failed:
					sum.Failed++
					if err := rep.write(res.r, res.reason); err != nil {
						cancel(err)
					}
				}
			}
			if cfg.Progress != nil {
				cfg.Progress.Done(len(rs), bytes)
			}
		}
	}()

	readErr := produce(ctx, src, cfg.BatchSize, batches, results, &sum.Read)
	close(batches)
	workers.Wait()
	close(results)
	<-collected
	sum.Elapsed = now().Sub(start)

	closeErr := rep.close()
	if readErr != nil {
		return sum, readErr
	}
	if cause := context.Cause(ctx); cause != nil {
		return sum, fmt.Errorf("%w: %w", ErrAborted, cause)
	}
	return sum, closeErr
}

// produce reads rows into batches. Locally failed rows go straight to the
// collector. A batch never holds the same registration ID twice: the bulk
// answer names failed items by ID, so a duplicate would make the outcome
// of both rows ambiguous; the second one starts a new batch instead, where
// the service answers "already exists".
func produce(ctx context.Context, src source, size int, batches chan<- []*row, results chan<- []result, read *int64) error {
	batch := make([]*row, 0, size)
	ids := make(map[string]bool, size)
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		select {
		case batches <- batch:
		case <-ctx.Done():
			results <- failAll(batch, "not sent: "+context.Cause(ctx).Error())
			return false
		}
		batch = make([]*row, 0, size)
		clear(ids)
		return true
	}
	for {
		if ctx.Err() != nil {
			flush()
			return nil
		}
		r, err := src.next()
		if errors.Is(err, io.EOF) {
			flush()
			return nil
		}
		if err != nil {
			flush()
			return err
		}
		*read++
		if r.err != nil {
			results <- []result{{r: r, kind: failed, reason: r.err.Error()}}
			continue
		}
		k := enrollment.Key(r.e.RegistrationID)
		if ids[k] && !flush() {
			return nil
		}
		batch = append(batch, r)
		ids[k] = true
		if len(batch) == size && !flush() {
			return nil
		}
	}
}

func failAll(rows []*row, reason string) []result {
	out := make([]result, len(rows))
	for i, r := range rows {
		out[i] = result{r: r, kind: failed, reason: reason}
	}
	return out
}

// sender sends batches; it is shared by the workers.
type sender struct {
	cfg   *Config
	abort context.CancelCauseFunc
	// outages counts consecutive batches that gave up on transient
	// failures. When every worker has given up in a row the service is
	// down: reading on would only fail the rest of the file, row by row,
	// into the report. Stopping leaves them unread for the re-run.
	outages atomic.Int64
}

// send runs one batch through the bulk API, with retries, and classifies
// every row.
func (s *sender) send(ctx context.Context, rows []*row) []result {
	cfg, abort := s.cfg, s.abort
	out := make([]result, 0, len(rows))
	pending := rows
	var delay time.Duration
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			// Items already written by an attempt whose answer was lost
			// come back as "already exists" on the retry: no duplicates.
			if err := ctxtime.Sleep(ctx, delay); err != nil {
				return append(out, failAll(pending, "not sent: "+context.Cause(ctx).Error())...)
			}
		}
		delay = cfg.Backoff(attempt + 1)
		items := make([]*enrollment.IndividualEnrollment, len(pending))
		for i, r := range pending {
			items[i] = r.e
		}
		res, err := cfg.Client.BulkEnrollments(ctx, enrollment.BulkCreate, items)
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return append(out, failAll(pending, "interrupted: "+context.Cause(ctx).Error())...)
			case client.IsTransient(err) && attempt < cfg.Retries:
				// A throttling server's Retry-After wins over our backoff.
				delay = max(delay, client.RetryAfter(err))
				continue
			case errors.Is(err, client.ErrUnauthorized), errors.Is(err, client.ErrNotFound):
				// Every other batch would fail the same way: stop.
				abort(fmt.Errorf("the service refused the import: %w", err))
				return append(out, failAll(pending, err.Error())...)
			case isRequestRejected(err) && len(pending) > 1:
				// The call as a whole was refused (too large, or one item
				// the server could not even decode): halve it until the
				// bad rows stand alone, so that good rows still go in.
				half := len(pending) / 2
				out = append(out, s.send(ctx, pending[:half])...)
				return append(out, s.send(ctx, pending[half:])...)
			}
			reason := err.Error()
			if client.IsTransient(err) {
				reason = fmt.Sprintf("gave up after %d attempts: %s", attempt+1, reason)
				if n := s.outages.Add(1); n >= int64(cfg.Parallel) {
					abort(fmt.Errorf("the service is unavailable (%d batches in a row failed after %d retries): %w", n, cfg.Retries, err))
				}
			}
			return append(out, failAll(pending, reason)...)
		}
		s.outages.Store(0)
		errs := make(map[string]enrollment.BulkOperationError, len(res.Errors))
		for _, e := range res.Errors {
			errs[enrollment.Key(e.RegistrationID)] = e
		}
		var retry []*row
		for _, r := range pending {
			e, ok := errs[enrollment.Key(r.e.RegistrationID)]
			switch status := e.ErrorCode / 1000; {
			case !ok:
				out = append(out, result{r: r, kind: created})
			case status == http.StatusConflict:
				out = append(out, result{r: r, kind: present})
			case (status == http.StatusTooManyRequests || status >= 500) && attempt < cfg.Retries:
				retry = append(retry, r) // the item's write failed on the server side
			default:
				out = append(out, result{r: r, kind: failed, reason: itemReason(e)})
			}
		}
		if len(retry) == 0 {
			return out
		}
		pending = retry
	}
}

func itemReason(e enrollment.BulkOperationError) string {
	if e.ErrorStatus == "" {
		return fmt.Sprintf("service error %d", e.ErrorCode)
	}
	return fmt.Sprintf("%s (code %d)", e.ErrorStatus, e.ErrorCode)
}

// isRequestRejected: the server refused the whole call as a bad request.
func isRequestRejected(err error) bool {
	e, ok := errors.AsType[*client.APIError](err)
	return ok && (e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge)
}

// defaultBackoff: 0.5s, 1s, 2s, ... capped at 30s, with ±25% jitter so
// that parallel batches do not retry in lockstep against a recovering
// server.
func defaultBackoff(attempt int) time.Duration {
	d := 500 * time.Millisecond << min(attempt-1, 6)
	d = min(d, 30*time.Second)
	return d - d/4 + rand.N(d/2+1)
}

// report writes the failed-rows CSV, opening it at the first failure.
type report struct {
	cfg *Config
	src source
	f   io.WriteCloser
	w   *csv.Writer
	err error
}

func (p *report) write(r *row, reason string) error {
	if p.err != nil {
		return p.err
	}
	if p.cfg.OpenFailed == nil {
		return nil
	}
	if p.w == nil {
		f, err := p.cfg.OpenFailed()
		if err != nil {
			p.err = fmt.Errorf("failed-rows file: %w", err)
			return p.err
		}
		p.f, p.w = f, csv.NewWriter(f)
		if err := p.w.Write(p.src.failedHeader()); err != nil {
			p.err = fmt.Errorf("failed-rows file: %w", err)
			return p.err
		}
	}
	if err := p.w.Write(p.src.failedRecord(r, reason)); err != nil {
		p.err = fmt.Errorf("failed-rows file: %w", err)
	}
	return p.err
}

func (p *report) close() error {
	if p.w == nil {
		return p.err
	}
	p.w.Flush()
	err := errors.Join(p.err, p.w.Error(), p.f.Close())
	if err != nil {
		return fmt.Errorf("failed-rows file: %w", err)
	}
	return nil
}
