package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"strings"
	"text/tabwriter"
	"time"
)

// Printer writes command results as a table or as the API's JSON.
type Printer struct {
	W    io.Writer
	JSON bool
}

// PrintJSON writes v indented, as the service answered it.
func (p Printer) PrintJSON(v any) error {
	enc := json.NewEncoder(p.W)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// PrintItems writes one item as itself and several as a JSON array, as
// the commands that answer one or more items (add, update, list) do.
func PrintItems[V any](p Printer, items []V) error {
	if len(items) == 1 {
		return p.PrintJSON(items[0])
	}
	return p.PrintJSON(items)
}

// Value writes v as JSON, or line (one value, for scripts) as text.
func (p Printer) Value(v any, line string) error {
	if p.JSON {
		return p.PrintJSON(v)
	}
	_, err := io.WriteString(p.W, line+"\n")
	return err
}

// Table is a tabwriter with a header row.
type Table struct{ tw *tabwriter.Writer }

// Table starts a table with its header row.
func (p Printer) Table(headers ...string) Table {
	t := Table{tw: tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)}
	t.Row(headers...)
	return t
}

// Row writes one row; an empty cell shows as "-".
func (t Table) Row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A tab or newline inside a value would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// Flush writes the aligned table.
func (t Table) Flush() error { return t.tw.Flush() }

// Details prints one item as FIELD  VALUE lines; empty values are left
// out.
func (p Printer) Details(pairs ...string) error {
	tw := tabwriter.NewWriter(p.W, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", pairs[i], pairs[i+1])
		}
	}
	return tw.Flush()
}

// PrintList writes every item of seq: a JSON array streamed item by item,
// or the rows of a table. onErr turns a failed page into the command's
// error.
func PrintList[T any](p Printer, seq iter.Seq2[T, error], onErr func(error) error, header []string, row func(T) []string) error {
	if p.JSON {
		l := &jsonList{w: p.W}
		for v, err := range seq {
			if err != nil {
				return onErr(err)
			}
			if err := l.add(v); err != nil {
				return err
			}
		}
		return l.end()
	}
	t := p.Table(header...)
	for v, err := range seq {
		if err != nil {
			return onErr(err)
		}
		t.Row(row(v)...)
	}
	return t.Flush()
}

// jsonList streams a JSON array one item at a time, so listing a million
// enrollments does not hold them all.
type jsonList struct {
	w io.Writer
	n int
}

func (l *jsonList) add(v any) error {
	b, err := json.MarshalIndent(v, "  ", "  ")
	if err != nil {
		return err
	}
	sep := ",\n  "
	if l.n == 0 {
		sep = "[\n  "
	}
	l.n++
	_, err = fmt.Fprintf(l.w, "%s%s", sep, b)
	return err
}

func (l *jsonList) end() error {
	if l.n == 0 {
		_, err := fmt.Fprintln(l.w, "[]")
		return err
	}
	_, err := fmt.Fprintln(l.w, "\n]")
	return err
}

// When is t in RFC 3339 UTC, "" for nil.
func When(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// OrDefault is s, or def when s is empty.
func OrDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
