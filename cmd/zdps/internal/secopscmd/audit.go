package secopscmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/zdps/zdps/cmd/zdps/internal/cmdutil"
	"github.com/zdps/zdps/pkg/client"
	"github.com/zdps/zdps/pkg/dps"
)

// NewAuditCmd is `zdps audit`.
func NewAuditCmd(g *cmdutil.Globals) *cobra.Command {
	return cmdutil.ParentOf(g, "audit", "Read and verify the tamper-evident audit trail", nil, newAuditListCmd, newAuditTailCmd, newAuditVerifyCmd)
}

// pageLimit is the most events asked for in one call (the server's cap).
const pageLimit = 1000

// pollInterval is how often tail --follow asks for new events; the trail
// is sealed every second, so polling faster would find nothing more.
const pollInterval = time.Second

// filterFlags are the selection flags list and tail share.
type filterFlags struct {
	since, until string
	action       string
	id           string
	outcome      string
}

func (f *filterFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.since, "since", "", "only events at or after this time: RFC 3339 (2026-01-02T15:04:05Z) or a duration ago (90m, 24h, 7d)")
	fs.StringVar(&f.until, "until", "", "only events before this time (same forms as --since)")
	fs.StringVar(&f.action, "action", "", `only this action (registration.refused), or every action with a prefix ending in "." (registration.)`)
	fs.StringVar(&f.id, "registration-id", "", "only events of this device")
	fs.StringVar(&f.outcome, "outcome", "", "only events with this outcome: success, refused or failed")
}

// query is the query of the filters, for a command that prints up to n
// events (--limit, -n); a negative n, given with flag, is refused.
func (f *filterFlags) query(n int, flag string, now time.Time) (client.AuditQuery, error) {
	var q client.AuditQuery
	if n < 0 {
		return q, cmdutil.Errorf(nil, "%s must not be negative", flag)
	}
	var err error
	if q.Since, err = parseWhen("--since", f.since, now); err != nil {
		return q, err
	}
	if q.Until, err = parseWhen("--until", f.until, now); err != nil {
		return q, err
	}
	switch f.outcome {
	case "", "success", "refused", "failed":
	default:
		return q, cmdutil.Errorf(nil, "--outcome must be success, refused or failed, not %q", f.outcome)
	}
	q.Action, q.RegistrationID, q.Outcome = f.action, f.id, f.outcome
	return q, nil
}

// parseWhen reads an RFC 3339 time or a duration before now. Go
// durations stop at hours; "d" days are what people type for retention.
func parseWhen(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		if days, err = strconv.Atoi(n); err == nil {
			d = time.Duration(days) * 24 * time.Hour
		}
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < 0 {
		return time.Time{}, cmdutil.Errorf(err, "%s %q: want an RFC 3339 time (2026-01-02T15:04:05Z) or a duration ago (90m, 24h, 7d)", flag, s)
	}
	return now.Add(-d), nil
}

// eventWriter prints events as table rows or JSON Lines (one event per
// line, the form of the file export), batch by batch. The table's column
// widths only grow, so the batches of tail --follow stay aligned with
// what was printed before.
type eventWriter struct {
	json   bool
	w      io.Writer
	enc    *json.Encoder
	widths []int
	rows   [][]string
}

var eventHeader = []string{"SEQ", "TIME", "ACTION", "OUTCOME", "REASON", "ACTOR", "RESOURCE/REGISTRATION"}

// followWidths are the columns' least widths when following: the header
// is printed before the rows that would widen it, so it is sized for the
// common values (the longest registration action, the owner policy).
var followWidths = []int{6, 20, 21, 7, 12, 31, 0}

func newEventWriter(p cmdutil.Printer, follow bool) *eventWriter {
	ew := &eventWriter{json: p.JSON, w: p.W, widths: make([]int, len(eventHeader))}
	if follow {
		copy(ew.widths, followWidths)
	}
	if p.JSON {
		ew.enc = json.NewEncoder(p.W)
	} else {
		ew.row(eventHeader...)
	}
	return ew
}

// row queues one row; an empty cell shows as "-", and a tab or newline
// a device could have put in a value cannot break the columns.
func (ew *eventWriter) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			c = "-"
		}
		c = strings.Map(func(r rune) rune {
			if r < ' ' || r == 0x7f {
				return ' '
			}
			return r
		}, c)
		cells[i] = c
		ew.widths[i] = max(ew.widths[i], utf8.RuneCountInString(c))
	}
	ew.rows = append(ew.rows, cells)
}

func (ew *eventWriter) add(e *dps.SealedAuditEvent) error {
	if ew.json {
		return ew.enc.Encode(e)
	}
	what := e.Resource
	if what == "" {
		what = e.RegistrationID
	}
	ew.row(strconv.FormatUint(e.Seq, 10), e.Time.UTC().Format(time.RFC3339), e.Action, e.Outcome, e.Reason, e.Actor, what)
	if len(ew.rows) >= pageLimit {
		// A long listing is written as it comes, not held.
		return ew.flush()
	}
	return nil
}

// flush writes the queued rows.
func (ew *eventWriter) flush() error {
	var b strings.Builder
	for _, r := range ew.rows {
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", ew.widths[i]-utf8.RuneCountInString(c)+2))
			}
		}
		b.WriteByte('\n')
	}
	ew.rows = ew.rows[:0]
	_, err := io.WriteString(ew.w, b.String())
	return err
}

func newAuditListCmd(g *cmdutil.Globals) *cobra.Command {
	var f filterFlags
	var limit int
	cmd := &cobra.Command{
		Use:     "list [--since T] [--until T] [--action A] [--registration-id ID] [--outcome O] [--limit N]",
		Aliases: []string{"ls"},
		Short:   "List audit events, oldest first (-o json: JSON Lines)",
		Example: `  zdps audit list --since 1h
  zdps audit list --action registration. --outcome refused
  zdps audit list --registration-id sn-0001 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(limit, "--limit", time.Now())
			if err != nil {
				return err
			}
			return g.Call(cmd, nil, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				q.Limit = pageLimit
				if limit > 0 {
					q.Limit = min(limit, pageLimit)
				}
				ew := newEventWriter(p, false)
				n := 0
				for e, err := range c.AllAuditEvents(ctx, q) {
					if err != nil {
						_ = ew.flush()
						return cmdutil.FailList(err, "audit events")
					}
					if err := ew.add(&e); err != nil {
						return err
					}
					if n++; limit > 0 && n == limit {
						break
					}
				}
				return ew.flush()
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 0, "print at most this many events (0: all)")
	return cmd
}

func newAuditTailCmd(g *cmdutil.Globals) *cobra.Command {
	var f filterFlags
	var last int
	var follow bool
	cmd := &cobra.Command{
		Use:   "tail [--follow] [-n N] [filters]",
		Short: "Print the last audit events, and with --follow the new ones as they are sealed",
		Long: `Print the last N matching audit events. The trail is read from its start to
find them (only N are kept in memory); --since makes that cheaper on a long
trail. With --follow, keep asking every second for new events until
interrupted (Ctrl-C).`,
		Example: `  zdps audit tail
  zdps audit tail --follow --action registration.refused`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q, err := f.query(last, "-n", time.Now())
			if err != nil {
				return err
			}
			return g.Call(cmd, nil, func(ctx context.Context, c *client.Client, p cmdutil.Printer, _ []string) error {
				ew := newEventWriter(p, follow)
				next, err := printLast(ctx, c, q, last, ew)
				if err != nil {
					return err
				}
				if !follow {
					return nil
				}
				return followTrail(ctx, c, q, next, ew, cmd.ErrOrStderr())
			})
		},
	}
	f.register(cmd.Flags())
	cmd.Flags().IntVarP(&last, "lines", "n", 20, "how many of the last events to print")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new events until interrupted")
	return cmd
}

// printLast prints the last n events q selects and returns the sequence
// to follow from. The trail is paged through from its start; a ring of n
// events is all that is kept.
func printLast(ctx context.Context, c *client.Client, q client.AuditQuery, n int, ew *eventWriter) (uint64, error) {
	ring := make([]dps.SealedAuditEvent, 0, n)
	start := 0 // index of the oldest event once the ring is full
	q.Limit = pageLimit
	for {
		p, err := c.AuditEvents(ctx, q)
		if err != nil {
			return 0, cmdutil.FailList(err, "audit events")
		}
		for _, e := range p.Events {
			switch {
			case n == 0:
			case len(ring) < n:
				ring = append(ring, e)
			default:
				ring[start] = e
				start = (start + 1) % n
			}
		}
		if p.Next <= q.After {
			break
		}
		q.After = p.Next
	}
	for i := range ring {
		if err := ew.add(&ring[(start+i)%len(ring)]); err != nil {
			return 0, err
		}
	}
	return q.After, ew.flush()
}

// followTrail polls for events after next until ctx ends, which is the
// normal way out. A server that is briefly away (restarting) is waited
// for; other errors end the command.
func followTrail(ctx context.Context, c *client.Client, q client.AuditQuery, next uint64, ew *eventWriter, stderr io.Writer) error {
	q.Limit = pageLimit
	q.After = next
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	away := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for {
			p, err := c.AuditEvents(ctx, q)
			if ctx.Err() != nil {
				return nil
			}
			if client.IsTransient(err) {
				if !away {
					fmt.Fprintf(stderr, "zdps: %v; retrying every %s\n", cmdutil.UnwrapTransport(err), pollInterval)
					away = true
				}
				break
			}
			if err != nil {
				return cmdutil.FailList(err, "audit events")
			}
			away = false
			for i := range p.Events {
				if err := ew.add(&p.Events[i]); err != nil {
					return err
				}
			}
			if err := ew.flush(); err != nil {
				return err
			}
			if p.Next <= q.After {
				break
			}
			q.After = p.Next
		}
	}
}

func newAuditVerifyCmd(g *cmdutil.Globals) *cobra.Command {
	return &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain and signed head; fails when an event was edited, deleted or inserted",
		Args:  cobra.NoArgs,
		RunE:  g.Run(cmdutil.Fetch((*client.Client).VerifyAudit, cmdutil.FailCall("verify the audit trail"), printVerify)),
	}
}

// printVerify prints the verification report; a trail that does not
// verify is the command's error (exit status 1) after the report.
func printVerify(p cmdutil.Printer, rep *dps.AuditReport) error {
	var err error
	if p.JSON {
		err = p.PrintJSON(rep)
	} else {
		status := "verified"
		if rep.Problem != nil {
			status = "NOT VERIFIED"
		}
		err = p.Details("Status", status,
			"Checked", fmt.Sprintf("sequences %d to %d (%d entries)", rep.From, rep.To, rep.Entries),
			"Pending", strconv.Itoa(rep.Pending)+" (recorded, not yet sealed)")
	}
	if err != nil {
		return err
	}
	if pr := rep.Problem; pr != nil {
		msg := fmt.Sprintf("the audit trail does not verify: %s at sequence %d", pr.Kind, pr.Seq)
		if pr.EventID != "" {
			msg += " (event " + pr.EventID + ")"
		}
		if pr.Detail != "" {
			msg += ": " + pr.Detail
		}
		return cmdutil.Errorf(pr, "%s", msg)
	}
	return nil
}
