// Package progress is the small interface through which the core reports
// what it is doing. The core never imports a UI; the command layer passes a
// Reporter that draws a bar on a terminal, or Discard.
package progress

// Reporter receives progress events. Implementations must be safe for
// concurrent use: several connections report at once.
type Reporter interface {
	// Start announces a unit of work (an account, a folder plan) with the
	// total number of messages and bytes expected; totals may grow later
	// through further Start calls (they add up).
	Start(label string, messages, bytes int64)
	// Folder says which folder is being worked on (for display only).
	Folder(name string)
	// Message reports one message done with its size in bytes.
	Message(bytes int64)
	// Warn reports a non-fatal problem (a folder skipped, say).
	Warn(msg string)
	// Done closes the display.
	Done()
}

// Discard is a Reporter that ignores everything.
var Discard Reporter = discard{}

type discard struct{}

func (discard) Start(string, int64, int64) {}
func (discard) Folder(string)              {}
func (discard) Message(int64)              {}
func (discard) Warn(string)                {}
func (discard) Done()                      {}
