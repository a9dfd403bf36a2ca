package termbar

import (
	"strings"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/testkit"
)

func TestDisplayAggregatesAccounts(t *testing.T) {
	var out testkit.Buffer
	var warned []string
	d := NewDisplay(NewConsole(&out), func(label, msg string) { warned = append(warned, label+": "+msg) })
	work, home := d.Reporter("work"), d.Reporter("home")
	work.Start("work", 2, 2000)
	home.Start("home", 1, 1000)
	pause := func() { time.Sleep(120 * time.Millisecond) } // past the render throttle
	work.Folder("INBOX")
	pause()
	work.Message(1000)
	pause()
	home.Folder("Sent")
	pause()
	home.Message(1500) // more than announced: the bar grows, no error
	pause()
	work.Message(1000)
	work.Warn("folder Junk skipped")
	done, msgs, bytes := d.Counts()
	if done != 3 || msgs != 3 || bytes < 3500 {
		t.Errorf("counts %d/%d msgs, %d bytes", done, msgs, bytes)
	}
	s := out.String()
	if !strings.Contains(s, "work INBOX 1/3 msgs") || !strings.Contains(s, "home Sent 2/3 msgs") || !strings.Contains(s, "work INBOX 3/3 msgs") || !strings.Contains(s, "2.4/2.9 KiB") {
		t.Errorf("bar descriptions missing:\n%q", s)
	}
	if len(warned) != 1 || warned[0] != "work: folder Junk skipped" {
		t.Errorf("warnings: %v", warned)
	}
	work.Done()
	home.Done()
	d.Close()
	d.Close() // idempotent
	end := out.String()
	if !strings.HasSuffix(end, "\r\x1b[K") {
		t.Errorf("bar line not cleared at the end: %q", end[max(0, len(end)-40):])
	}
	// Nothing is drawn after Close.
	work.Message(10)
	if out.String() != end {
		t.Errorf("output after Close")
	}
}

func TestDisplayUnknownTotal(t *testing.T) {
	var out testkit.Buffer
	d := NewDisplay(NewConsole(&out), nil)
	r := d.Reporter("pop")
	r.Start("pop", 0, 0) // POP3 before LIST: nothing known yet
	r.Message(100)
	r.Start("pop", 5, 5000)
	r.Message(100)
	d.Close()
	time.Sleep(250 * time.Millisecond) // the spinner goroutine must have stopped
	n := len(out.String())
	time.Sleep(250 * time.Millisecond)
	if len(out.String()) != n {
		t.Errorf("bar still rendering after Close")
	}
}

func TestConsolePrintlnClearsBar(t *testing.T) {
	var out testkit.Buffer
	c := NewConsole(&out)
	c.Write([]byte("\r[=====     ] 50%"))
	c.Println("mailark: warning: x")
	if got := out.String(); !strings.HasSuffix(got, "\r\x1b[Kmailark: warning: x\n") {
		t.Errorf("got %q", got)
	}
	c.Println("second")
	if got := out.String(); !strings.HasSuffix(got, "x\nsecond\n") {
		t.Errorf("a line without a bar must not clear: %q", got)
	}
}
