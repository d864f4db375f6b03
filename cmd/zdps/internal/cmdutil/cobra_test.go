package cmdutil

import (
	"bytes"
	"context"
	"errors"
	"iter"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/zdps/zdps/pkg/client"
)

func pages(items []string, failAt int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for i, v := range items {
			if i == failAt {
				yield("", errors.New("page failed"))
				return
			}
			if !yield(v, nil) {
				return
			}
		}
	}
}

func TestPrintList(t *testing.T) {
	tests := []struct {
		name    string
		json    bool
		items   []string
		failAt  int
		want    string
		wantErr string
	}{
		{name: "empty json", json: true, failAt: -1, want: "[]\n"},
		{name: "json", json: true, items: []string{"a", "b"}, failAt: -1, want: "[\n  \"a\",\n  \"b\"\n]\n"},
		{name: "table", items: []string{"a", ""}, failAt: -1, want: "ID\na\n-\n"},
		{name: "failed page", json: true, items: []string{"a", "b"}, failAt: 1, wantErr: "list things: page failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := PrintList(Printer{W: &out, JSON: tt.json}, pages(tt.items, tt.failAt),
				func(err error) error { return FailList(err, "things") }, []string{"ID"}, func(s string) []string { return []string{s} })
			switch {
			case tt.wantErr != "":
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			case out.String() != tt.want:
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestPrintItemsAndValue(t *testing.T) {
	tests := []struct {
		name string
		run  func(Printer) error
		json bool
		want string
	}{
		{"one item", func(p Printer) error { return PrintItems(p, []int{1}) }, true, "1\n"},
		{"items", func(p Printer) error { return PrintItems(p, []int{1, 2}) }, true, "[\n  1,\n  2\n]\n"},
		{"value json", func(p Printer) error { return p.Value(map[string]string{"k": "v"}, "v") }, true, "{\n  \"k\": \"v\"\n}\n"},
		{"value text", func(p Printer) error { return p.Value(map[string]string{"k": "v"}, "v") }, false, "v\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tt.run(Printer{W: &out, JSON: tt.json}); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Fatalf("got %q, want %q", out.String(), tt.want)
			}
		})
	}
}

func TestAll(t *testing.T) {
	list := func(items []string, failAt int) func(*client.Client, context.Context, int) iter.Seq2[string, error] {
		return func(*client.Client, context.Context, int) iter.Seq2[string, error] { return pages(items, failAt) }
	}
	got, err := All(list([]string{"a", "b"}, -1))(nil, context.Background())
	if err != nil || strings.Join(got, ",") != "a,b" {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, err := All(list([]string{"a", "b"}, 1))(nil, context.Background()); err == nil {
		t.Fatal("a failed page is not an error")
	}
}

// The argument checks name the arguments and run before any call.
func TestExactArgs(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "zdps get needs NAME (got 0 argument(s); see --help)"},
		{[]string{"a", "b"}, "zdps get needs NAME (got 2 argument(s); see --help)"},
		{[]string{" "}, "zdps get: NAME is empty"},
	}
	for _, tt := range tests {
		g := NewGlobals(Options{Getenv: func(string) string { return "" }})
		root := &cobra.Command{Use: "zdps", SilenceUsage: true, SilenceErrors: true}
		g.RegisterFlags(root.PersistentFlags())
		root.AddCommand(NewShowCmd(g, ShowSpec[string]{Use: "get NAME", Get: func(*client.Client, context.Context, string) (string, error) {
			t.Fatal("called with bad arguments")
			return "", nil
		}}))
		root.SetArgs(append([]string{"get"}, tt.args...))
		if err := root.Execute(); err == nil || err.Error() != tt.want {
			t.Errorf("args %q: error %v, want %q", tt.args, err, tt.want)
		}
	}
}
