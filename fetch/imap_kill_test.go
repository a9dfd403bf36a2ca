package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/imapconn/imaptest"
	"github.com/mailark/mailark/internal/mailerr"
	"github.com/mailark/mailark/internal/testbed"
)

// The kill test runs IMAP fetches in child processes (this test binary,
// re-executed to run only TestIMAPChild) and SIGKILLs them at seeded
// random moments.

const imapChildEnv = "MAILARK_TEST_IMAP_CHILD"

type imapChildConfig struct {
	Host        string
	Port        int
	User        string
	Plain       bool // plaintext (the in-memory server) instead of implicit TLS
	CAFile      string
	Archive     string
	Connections int
}

// imapChildOutput is what a child that finished prints on stdout.
type imapChildOutput struct {
	Messages  int
	Bytes     int64
	PeakRSSKB int64
}

// TestIMAPChild is the child process of TestIMAPKillAnywhere; it skips
// unless started by it.
func TestIMAPChild(t *testing.T) {
	spec := os.Getenv(imapChildEnv)
	if spec == "" {
		t.Skip("runs only as the child process of the IMAP kill test")
	}
	var cfg imapChildConfig
	if err := json.Unmarshal([]byte(spec), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(100)
	}
	a := &account.Account{Protocol: account.IMAP, User: cfg.User, Host: cfg.Host, Port: cfg.Port,
		Security: account.ImplicitTLS, Auth: account.AuthPassword, CAFile: cfg.CAFile,
		Secret: account.EnvSecret("MAILARK_PASSWORD"), Timeout: 30 * time.Second}
	if cfg.Plain {
		a.Security = account.Plain
	}
	arc, err := archive.Open(context.Background(), cfg.Archive, archive.Options{LockWait: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(mailerr.ExitCode(err))
	}
	res, err := IMAP(context.Background(), a, arc, Options{Connections: cfg.Connections})
	if cerr := arc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(mailerr.ExitCode(err))
	}
	json.NewEncoder(os.Stdout).Encode(imapChildOutput{Messages: res.NewMessages, Bytes: res.Bytes, PeakRSSKB: vmHWM()})
	os.Exit(0)
}

// vmHWM is this process's peak resident set in KiB (getrusage of a child
// started from a big parent would report the parent's size at fork).
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return -1
}

// runIMAPChild starts a child fetch and kills it after delay (0: let it
// finish). It reports whether the child was killed before it finished.
func runIMAPChild(t *testing.T, cfg imapChildConfig, delay time.Duration) bool {
	killed, _ := runIMAPChildOut(t, cfg, delay, testbed.Password)
	return killed
}

func runIMAPChildOut(t *testing.T, cfg imapChildConfig, delay time.Duration, password string) (bool, string) {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIMAPChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), imapChildEnv+"="+string(spec), "MAILARK_PASSWORD="+password)
	out := &imapTrace{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	if delay > 0 {
		timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		killed = true
	} else if err != nil {
		t.Fatalf("child fetch failed: %v\n%s", err, out)
	}
	return killed, out.String()
}

// TestIMAPBigMessageFlatMemory fetches a 50 MB message in a child process
// (from the in-memory server, which holds it in this process) and checks
// the child's peak RSS: the body streams from the socket to the disk.
func TestIMAPBigMessageFlatMemory(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Config{})
	srv.Append(t, imaptest.Msg{Folder: "INBOX", Raw: imapBigMessage(50 << 20), Date: time.Now()})
	for _, format := range imapFormats {
		cfg := imapChildConfig{Host: srv.Host, Port: srv.Port, User: imaptest.User, Plain: true,
			Archive: string(format) + ":" + filepath.Join(t.TempDir(), "a")}
		_, out := runIMAPChildOut(t, cfg, 0, imaptest.Password)
		var res imapChildOutput
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &res); err != nil {
			t.Fatalf("child output %q: %v", out, err)
		}
		t.Logf("%s: %d bytes fetched with peak RSS %d MB", format, res.Bytes, res.PeakRSSKB>>10)
		if res.Messages != 1 || res.Bytes < 50<<20 {
			t.Errorf("fetched %+v", res)
		}
		if res.PeakRSSKB <= 0 || res.PeakRSSKB > 40<<10 {
			t.Errorf("peak RSS %d KiB for a 50 MB message", res.PeakRSSKB)
		}
	}
}

// TestIMAPKillAnywhere kills fetches at 50 seeded random moments (into
// both formats, in rounds: a round ends when a run finishes before its
// kill) and checks after each round that the archive holds every server
// message exactly once, byte for byte, with its flags and date.
func TestIMAPKillAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("kill harness is long")
	}
	s := testbed.Start(t)
	user := s.AddUser(t, "killme")
	s.Import(t, user, testbed.GenMessages(31, 400, testbed.GenOptions{
		Folders: []string{"INBOX", "INBOX", "Sent", "Work/2024", "Entwürfe"}, AttachmentRate: 0.2, MaxAttachment: 512 << 10}))
	want := imapServerSnapshot(t, s, user)

	cfg := imapChildConfig{Host: s.Host, Port: s.IMAPSPort, User: user, CAFile: s.CAFile, Connections: 2}
	// How long a whole run takes, to spread the kill points over it.
	cfg.Archive = "maildir:" + filepath.Join(t.TempDir(), "timing")
	start := time.Now()
	runIMAPChild(t, cfg, 0)
	full := time.Since(start)
	// And how long a run with nothing to do takes (process start, login,
	// LIST): kills before that would hit no archive write.
	start = time.Now()
	runIMAPChild(t, cfg, 0)
	noop := time.Since(start)
	setup := noop / 2
	work := max(full-setup, time.Millisecond)

	r := rand.New(rand.NewPCG(2026, 11))
	const killPoints = 50
	kills, rounds := 0, 0
	for kills < killPoints {
		if rounds == 200 {
			t.Fatalf("only %d kill points in %d rounds: the runs end before the kills", kills, rounds)
		}
		format := imapFormats[rounds%len(imapFormats)]
		rounds++
		cfg.Archive = fmt.Sprintf("%s:%s", format, filepath.Join(t.TempDir(), "archive"))
		killedThisRound := 0
		for killedThisRound < 10 && kills < killPoints {
			// Each run resumes with less left to do: aim later kills of a
			// round at the shorter runs.
			delay := setup + time.Duration(r.Int64N(int64(work)/int64(killedThisRound+1)))
			if !runIMAPChild(t, cfg, delay) {
				break // finished before the kill: the round is over
			}
			kills++
			killedThisRound++
		}
		if killedThisRound == 0 {
			setup /= 2 // the runs are quicker than measured: aim earlier
		}
		runIMAPChild(t, cfg, 0) // to completion
		_, dir, _ := archive.ParseSpec(cfg.Archive)
		if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
			t.Fatalf("round %d (%s, %d kills): archive differs from the server:\n%s", rounds, format, killedThisRound, d)
		}
	}
	t.Logf("%d kill points over %d rounds (a full run takes %v, one with nothing to do %v); every round ended with each message exactly once",
		kills, rounds, full.Round(time.Millisecond), noop.Round(time.Millisecond))
}
