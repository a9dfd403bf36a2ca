// Package termbar draws mailark's progress on a terminal: one aggregate
// bar (schollz/progressbar) counting bytes, with the account, the current
// folder and the message count in its description.
//
// progressbar draws a single line and has no multi-bar support, so all
// accounts of a display share one bar; each account reports through its
// own Reporter, which adds its totals to the bar's. The caller decides
// whether a terminal is there: a Display is only made for one, because
// progressbar writes (and fsyncs, for files) on every render whatever its
// writer is.
package termbar

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/mailark/mailark/internal/progress"
)

// Console is where the bar and the lines printed around it go. Writes are
// serialised so that a warning never lands in the middle of a bar render.
type Console struct {
	mu  sync.Mutex
	w   io.Writer
	bar bool // a bar line is on screen and must be cleared before a line is printed
}

// NewConsole wraps w (normally os.Stderr on a terminal).
func NewConsole(w io.Writer) *Console { return &Console{w: w} }

// Write is used by the bar itself.
func (c *Console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.bar = true
	return c.w.Write(p)
}

// Println prints one line, clearing a bar first; the bar redraws itself on
// its next update.
func (c *Console) Println(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar {
		io.WriteString(c.w, "\r\x1b[K")
		c.bar = false
	}
	io.WriteString(c.w, strings.TrimRight(line, "\n")+"\n")
}

// ClearLine wipes a bar's line, before something else is printed on the
// terminal (stdout shares it).
func (c *Console) ClearLine() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar {
		io.WriteString(c.w, "\r\x1b[K")
		c.bar = false
	}
}

// Display is one bar shared by the accounts of a run.
type Display struct {
	console *Console
	warn    func(label, msg string)

	mu         sync.Mutex
	bar        *progressbar.ProgressBar
	totalBytes int64
	totalMsgs  int64
	doneMsgs   int64
	label      string            // of the account that reported last
	folders    map[string]string // label → its current folder
	closed     bool
}

// NewDisplay makes a display on console. warn receives Reporter.Warn
// messages (the caller logs them and prints them around the bar).
func NewDisplay(console *Console, warn func(label, msg string)) *Display {
	return &Display{console: console, warn: warn}
}

// Reporter returns the progress.Reporter of one account or job, labelled
// for the bar's description. Its Done does not remove the bar: the display
// outlives the steps of a job (a migrate fetches, then restores); its
// owner calls Close.
func (d *Display) Reporter(label string) progress.Reporter {
	return &reporter{d: d, label: label}
}

type reporter struct {
	d     *Display
	label string
}

func (r *reporter) Start(label string, messages, bytes int64) { r.d.start(r.label, messages, bytes) }
func (r *reporter) Folder(name string)                        { r.d.folderChanged(r.label, name) }
func (r *reporter) Message(bytes int64)                       { r.d.message(r.label, bytes) }
func (r *reporter) Warn(msg string) {
	if r.d.warn != nil {
		r.d.warn(r.label, msg)
	}
}
func (r *reporter) Done() {}

func (d *Display) start(label string, messages, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.totalMsgs += messages
	d.totalBytes += bytes
	d.label = label
	if d.bar == nil {
		d.bar = d.newBar()
		return
	}
	if bytes > 0 {
		d.bar.ChangeMax64(max(d.totalBytes, 1))
	}
	d.describe()
}

// newBar is built at the first Start, when a total is known; a bar with
// max 0 would reject every Add.
func (d *Display) newBar() *progressbar.ProgressBar {
	total := d.totalBytes
	if total <= 0 {
		total = -1 // unknown: progressbar shows a spinner
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(d.console),
		progressbar.OptionSetDescription(d.description()),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionClearOnFinish(),
	)
}

func (d *Display) folderChanged(label, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.folders == nil {
		d.folders = map[string]string{}
	}
	d.label, d.folders[label] = label, name
	d.describe()
}

func (d *Display) message(label string, bytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.bar == nil {
		return
	}
	d.doneMsgs++
	d.label = label
	d.bar.Describe(d.description())
	// A server may send more bytes than it announced (sizes are estimates
	// for POP3 and after CRLF conversion); grow the bar rather than let
	// progressbar refuse the update.
	if st := d.bar.State(); d.totalBytes > 0 && int64(st.CurrentNum)+bytes > d.totalBytes {
		d.totalBytes = int64(st.CurrentNum) + bytes
		d.bar.ChangeMax64(d.totalBytes)
	}
	_ = d.bar.Add64(bytes)
}

func (d *Display) describe() {
	if d.bar != nil && !d.closed {
		d.bar.Describe(d.description())
	}
}

func (d *Display) description() string {
	var b strings.Builder
	b.WriteString(d.label)
	if f := d.folders[d.label]; f != "" {
		b.WriteString(" " + truncate(f, 30))
	}
	if d.totalMsgs > 0 {
		fmt.Fprintf(&b, " %d/%d msgs", d.doneMsgs, d.totalMsgs)
	} else if d.doneMsgs > 0 {
		fmt.Fprintf(&b, " %d msgs", d.doneMsgs)
	}
	return b.String()
}

// Close removes the bar from the screen; the caller prints its summary
// after it.
func (d *Display) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	d.closed = true
	if d.bar != nil {
		// Finish, not Exit: only a finished bar stops the spinner
		// goroutine progressbar runs for an unknown total.
		_ = d.bar.Finish()
	}
	d.console.ClearLine()
}

// Counts returns messages done and the totals announced so far.
func (d *Display) Counts() (done, totalMsgs, totalBytes int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.doneMsgs, d.totalMsgs, d.totalBytes
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
