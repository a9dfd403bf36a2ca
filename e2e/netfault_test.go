package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/faults"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// faultsInjected counts the faults that fired in this test binary, for the
// figures the suite reports.
var faultsInjected atomic.Int64

// netTimeout is the --timeout every network-fault run gets: a stall must be
// noticed after it, not after the 60 s default.
const netTimeout = 2 * time.Second

// netCase is one network fault between mailark and Dovecot.
type netCase struct {
	name string
	op   string // "imap", "pop3" (with --delete) or "restore"
	plan []faults.Fault
	// wantCode is the exit code of the faulted run: 0 when the retries
	// (or the source's own reconnect) get through, ExitNetwork when the
	// faults outlast them.
	wantCode int
	args     []string // extra flags
	// atLeast is how long the run must take at least (a stall is only
	// noticed after the timeout), atMost how long it may take.
	atLeast, atMost time.Duration
}

// literal is the marker that puts a fault inside a message body: the
// literal of an IMAP BODY[] (downstream) or of an APPEND (upstream).
var (
	bodyLiteral   = []byte("BODY[] {")
	appendLiteral = []byte("APPEND ")
	retrOK        = []byte("+OK ")
)

func netCases() []netCase {
	reset := func(dir faults.Direction, match []byte, after int64) faults.Fault {
		return faults.Fault{Kind: faults.Reset, Dir: dir, Match: match, After: after}
	}
	return []netCase{
		{name: "imap reset mid-literal", op: "imap", plan: []faults.Fault{reset(faults.Downstream, bodyLiteral, 3000)}, atMost: 40 * time.Second},
		{name: "imap two resets mid-literal", op: "imap", plan: []faults.Fault{reset(faults.Downstream, bodyLiteral, 20_000), reset(faults.Downstream, bodyLiteral, 150_000)}, atMost: 60 * time.Second},
		{name: "imap truncated response", op: "imap", plan: []faults.Fault{{Kind: faults.Truncate, Match: bodyLiteral, After: 777}}, atMost: 40 * time.Second},
		{name: "imap truncated greeting", op: "imap", plan: []faults.Fault{{Kind: faults.Truncate, After: 10}}, atMost: 40 * time.Second},
		{name: "imap stall beyond the timeout", op: "imap", plan: []faults.Fault{{Kind: faults.Stall, Match: bodyLiteral, After: 5000}}, atLeast: netTimeout, atMost: 60 * time.Second},
		{name: "imap slow trickle stays alive", op: "imap", plan: []faults.Fault{{Kind: faults.Trickle, Match: bodyLiteral, After: 100, Chunk: 8 << 10, Interval: 10 * time.Millisecond}}, atMost: 60 * time.Second},
		{name: "imap faults outlast the retries", op: "imap", args: []string{"--retries", "1"}, wantCode: mailerr.ExitNetwork,
			plan: repeat(reset(faults.Downstream, bodyLiteral, 1000), 12), atMost: 60 * time.Second},
		{name: "pop3 reset mid-RETR with --delete", op: "pop3", plan: []faults.Fault{reset(faults.Downstream, retrOK, 40_000)}, atMost: 40 * time.Second},
		{name: "pop3 truncated RETR with --delete", op: "pop3", plan: []faults.Fault{{Kind: faults.Truncate, Match: retrOK, After: 90_000}}, atMost: 40 * time.Second},
		{name: "pop3 stall with --delete", op: "pop3", plan: []faults.Fault{{Kind: faults.Stall, Match: retrOK, After: 20_000}}, atLeast: netTimeout, atMost: 60 * time.Second},
		{name: "pop3 faults outlast the retries", op: "pop3", args: []string{"--retries", "1"}, wantCode: mailerr.ExitNetwork,
			plan: repeat(reset(faults.Downstream, retrOK, 2000), 12), atMost: 60 * time.Second},
		{name: "restore reset mid-APPEND", op: "restore", plan: []faults.Fault{reset(faults.Upstream, appendLiteral, 30_000)}, atMost: 40 * time.Second},
		{name: "restore truncated upload", op: "restore", plan: []faults.Fault{{Kind: faults.Truncate, Dir: faults.Upstream, Match: appendLiteral, After: 100_000}}, atMost: 40 * time.Second},
		{name: "restore stalled answer", op: "restore", plan: []faults.Fault{{Kind: faults.Stall, Match: []byte("OK [APPENDUID"), After: 0}}, atLeast: netTimeout, atMost: 60 * time.Second},
	}
}

func repeat(f faults.Fault, n int) []faults.Fault {
	out := make([]faults.Fault, n)
	for i := range out {
		out[i] = f
	}
	return out
}

// TestNetworkFaults puts the fault proxy between mailark and Dovecot: each
// faulted run completes after retries or fails with exit code 5 and one
// clear line, never hangs, and a rerun without faults completes with every
// message exactly once (and, for POP3 --delete, nothing deleted that the
// archive lacks).
func TestNetworkFaults(t *testing.T) {
	s := testbed.Start(t)
	source := s.AddUser(t, "netsource")
	folders := []string{"INBOX", "Sent"}
	want := seed(t, s, source, 7, 40, folders...)
	popMsgs := testbed.GenMessages(8, 30, testbed.GenOptions{MaxAttachment: 256 << 10})

	for i, tc := range netCases() {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			t.Parallel()
			format := formatFor(i)
			root := filepath.Join(t.TempDir(), "archive")
			spec := format + ":" + root
			var target, user, restoreFrom string
			var port int
			var wantHere sums
			switch tc.op {
			case "imap":
				user, port, wantHere = source, s.IMAPPort, want
			case "pop3":
				user = s.AddUser(t, fmt.Sprintf("netpop%d", i))
				s.Import(t, user, popMsgs)
				port, wantHere = s.POP3Port, serverSums(t, s, user, "INBOX")
			case "restore":
				// Each restore has its archive: a restore locks it.
				restoreFrom = "maildir:" + filepath.Join(t.TempDir(), "restore-from")
				mustRun(t, t.TempDir(), invocation{args: []string{"fetch", s.URL("imap", source), restoreFrom}, env: passwordEnv})
				target = s.AddUser(t, fmt.Sprintf("nettarget%d", i))
				port, wantHere = s.IMAPPort, want
			}
			proxy, err := faults.Listen(fmt.Sprintf("127.0.0.1:%d", port))
			if err != nil {
				t.Fatal(err)
			}
			defer proxy.Close()
			proxy.Plan(tc.plan...)

			args := func(addr string) []string {
				base := []string{"--timeout", netTimeout.String(), "--connections", "1"}
				switch tc.op {
				case "imap":
					return append(append([]string{"fetch", "imap://" + user + "@" + addr, spec}, base...), tc.args...)
				case "pop3":
					return append(append([]string{"fetch", "--delete", "pop3://" + user + "@" + addr, spec}, base...), tc.args...)
				}
				return append(append([]string{"restore", restoreFrom, "imap://" + target + "@" + addr}, base...), tc.args...)
			}
			home := t.TempDir()
			res := run(t, home, invocation{args: args(proxy.Addr()), env: passwordEnv, limit: tc.atMost + 30*time.Second})
			fired := proxy.Events()
			faultsInjected.Add(int64(len(fired)))
			if len(fired) == 0 {
				t.Fatalf("no fault fired (the plan never triggered):\n%s", res)
			}
			if res.code != tc.wantCode {
				t.Fatalf("faulted run: exit %d, want %d (%d faults fired):\n%s", res.code, tc.wantCode, len(fired), res)
			}
			if res.elapsed < tc.atLeast || res.elapsed > tc.atMost {
				t.Errorf("faulted run took %v, want between %v and %v", res.elapsed, tc.atLeast, tc.atMost)
			}
			if tc.wantCode != 0 {
				checkErrorLines(t, res.stderr, "connection")
			}
			if tc.op == "pop3" {
				checkPOP3Deleted(t, s, user, spec, wantHere)
			}

			// Rerun straight to Dovecot: it completes and nothing is lost
			// or doubled.
			direct := fmt.Sprintf("127.0.0.1:%d", port)
			mustRun(t, home, invocation{args: args(direct), env: passwordEnv})
			if tc.op == "restore" {
				if d := diffSums(serverSums(t, s, target, folders...), wantHere); d != "" {
					t.Errorf("target after the rerun: %s", d)
				}
				return
			}
			if d := diffSums(archiveSums(t, spec), wantHere); d != "" {
				t.Errorf("archive after the rerun: %s", d)
			}
			if tc.op == "pop3" {
				if n := serverSums(t, s, user, "INBOX").total(); n != 0 {
					t.Errorf("%d messages still on the server after a completed --delete run", n)
				}
			}
			t.Logf("%d fault(s) fired; faulted run exit %d in %v", len(fired), res.code, res.elapsed.Round(time.Millisecond))
		})
	}
}

// checkPOP3Deleted: every message gone from the POP3 server is in the
// archive.
func checkPOP3Deleted(t *testing.T, s *testbed.Server, user, spec string, original sums) {
	t.Helper()
	left := serverSums(t, s, user, "INBOX")
	if n := deletedUnarchived(original["INBOX"], left["INBOX"], archiveSumsIfAny(t, spec).all()); n > 0 {
		t.Errorf("%d message(s) deleted from the server that the archive lacks", n)
	}
}

// checkErrorLines: a failed run ends with one line saying what failed
// (naming want), and every line it printed is a "mailark: " line (warnings
// before the error are fine; stack traces and library noise are not).
func checkErrorLines(t *testing.T, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "mailark: ") {
			t.Errorf("stderr line not from mailark: %q", l)
		}
	}
	last := lines[len(lines)-1]
	if !strings.Contains(strings.ToLower(last), strings.ToLower(want)) {
		t.Errorf("the error line %q does not say %q", last, want)
	}
}
