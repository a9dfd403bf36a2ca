package fetch

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
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
	CAFile      string
	Archive     string
	Connections int
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
	arc, err := archive.Open(context.Background(), cfg.Archive, archive.Options{LockWait: 10 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(mailerr.ExitCode(err))
	}
	_, err = IMAP(context.Background(), a, arc, Options{Connections: cfg.Connections})
	if cerr := arc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(mailerr.ExitCode(err))
	}
	os.Exit(0)
}

// runIMAPChild starts a child fetch and kills it after delay (0: let it
// finish). It reports whether the child was killed before it finished.
func runIMAPChild(t *testing.T, cfg imapChildConfig, delay time.Duration) bool {
	t.Helper()
	spec, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run=^TestIMAPChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), imapChildEnv+"="+string(spec), "MAILARK_PASSWORD="+testbed.Password)
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
	return killed
}

// TestIMAPKillAnywhere kills fetches at 50 seeded random moments (into
// both formats, several rounds each: a round ends when a run is allowed
// to finish) and checks after each round that the archive holds every
// server message exactly once, byte for byte, with its flags and date.
func TestIMAPKillAnywhere(t *testing.T) {
	if testing.Short() {
		t.Skip("kill harness is long")
	}
	s := testbed.Start(t)
	user := s.AddUser(t, "killme")
	s.Import(t, user, testbed.GenMessages(31, 600, testbed.GenOptions{
		Folders: []string{"INBOX", "INBOX", "Sent", "Work/2024", "Entwürfe"}, AttachmentRate: 0.2, MaxAttachment: 512 << 10}))
	want := imapServerSnapshot(t, s, user)

	cfg := imapChildConfig{Host: s.Host, Port: s.IMAPSPort, User: user, CAFile: s.CAFile, Connections: 2}
	// How long a whole run takes, to spread the kill points over it.
	cfg.Archive = "maildir:" + filepath.Join(t.TempDir(), "timing")
	start := time.Now()
	runIMAPChild(t, cfg, 0)
	full := time.Since(start)

	r := rand.New(rand.NewPCG(2026, 11))
	const killPoints = 50
	kills, rounds := 0, 0
	for kills < killPoints {
		format := imapFormats[rounds%len(imapFormats)]
		rounds++
		cfg.Archive = fmt.Sprintf("%s:%s", format, filepath.Join(t.TempDir(), "archive"))
		killedThisRound := 0
		for killedThisRound < 8 && kills < killPoints {
			delay := time.Duration(r.Int64N(int64(full))) + time.Millisecond
			if !runIMAPChild(t, cfg, delay) {
				break // finished before the kill: the round is over
			}
			kills++
			killedThisRound++
		}
		runIMAPChild(t, cfg, 0) // to completion
		_, dir, _ := archive.ParseSpec(cfg.Archive)
		if d := diffSnapshots(want, archiveSnapshot(t, format, dir)); d != "" {
			t.Fatalf("round %d (%s, %d kills): archive differs from the server:\n%s", rounds, format, killedThisRound, d)
		}
	}
	t.Logf("%d kill points over %d rounds (a full run takes %v); every round ended with each message exactly once", kills, rounds, full.Round(time.Millisecond))
}
