package cmdutil

import (
	"time"

	"github.com/spf13/cobra"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// Bar is one progress bar on the command's stderr, drawn whether or not
// stderr is a terminal (the caller decided with DrawProgress).
type Bar struct {
	p *mpb.Progress
	*mpb.Bar
}

// NewBar starts a bar of total (0: unknown, grows with SetTotal) named
// name, with status decorators after the percentage (before) and after
// the bar (after, then the elapsed time).
func NewBar(cmd *cobra.Command, name string, total int64, before, after []decor.Decorator) *Bar {
	p := mpb.NewWithContext(cmd.Context(), mpb.WithOutput(cmd.ErrOrStderr()), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond), mpb.ForceTTY(), mpb.WithAutoRefresh())
	before = append([]decor.Decorator{decor.Name(name), decor.Percentage(decor.WCSyncSpace)}, before...)
	after = append(after, decor.Name("  "), decor.Elapsed(decor.ET_STYLE_GO))
	return &Bar{p: p, Bar: p.AddBar(total, mpb.PrependDecorators(before...), mpb.AppendDecorators(after...))}
}

// Finish completes the bar (or aborts it, leaving it where it stopped)
// and waits until it is drawn.
func (b *Bar) Finish(complete bool) {
	if complete {
		b.SetTotal(-1, true)
	} else {
		b.Abort(false)
	}
	b.p.Wait()
}
