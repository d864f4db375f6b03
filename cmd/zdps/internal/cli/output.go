package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// printer writes command results as a table or as the API's JSON.
type printer struct {
	w    io.Writer
	json bool
}

func (g *globals) printer(w io.Writer) printer { return printer{w: w, json: g.output == "json"} }

// printJSON writes v indented, as the service answered it.
func (p printer) printJSON(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table is a tabwriter with a header row.
type table struct{ tw *tabwriter.Writer }

func (p printer) table(headers ...string) table {
	t := table{tw: tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)}
	t.row(headers...)
	return t
}

func (t table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
		// A tab or newline inside a value would break the columns.
		cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cells[i])
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t table) flush() error { return t.tw.Flush() }

// details prints one item as FIELD  VALUE lines; empty values are left
// out.
func (p printer) details(pairs ...string) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", pairs[i], pairs[i+1])
		}
	}
	return tw.Flush()
}

// jsonList streams a JSON array one item at a time, so listing a million
// enrollments does not hold them all.
type jsonList struct {
	w     io.Writer
	n     int
	begun bool
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

func when(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
