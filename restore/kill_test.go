package restore

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/mailark/mailark/archive"
	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/testbed"
	"github.com/mailark/mailark/internal/testkit"
)

// Environment of the child process TestRestoreKilled starts.
const (
	killChildEnv = "MAILARK_RESTORE_KILL_CHILD"  // archive spec
	killTarget   = "MAILARK_RESTORE_KILL_TARGET" // host:port:user
	killMode     = "MAILARK_RESTORE_KILL_MODE"   // "multi" or "single"
	killBatch    = "MAILARK_RESTORE_KILL_BATCH"  // messages per batch
)

// TestRestoreKillChild is the restore the parent kills; it does nothing
// unless started by TestRestoreKilled. It reports each uploaded message
// on stdout ("m"), after the ledger has recorded it.
func TestRestoreKillChild(t *testing.T) {
	spec := os.Getenv(killChildEnv)
	if spec == "" {
		t.Skip("child process of TestRestoreKilled")
	}
	var host, user string
	var port int
	if _, err := fmt.Sscanf(os.Getenv(killTarget), "%s %d %s", &host, &port, &user); err != nil {
		t.Fatal(err)
	}
	a := &account.Account{Protocol: account.IMAP, User: user, Host: host, Port: port, Security: account.Plain,
		Auth: account.AuthPassword, Secret: testkit.Secret(testbed.Password), Timeout: 20 * time.Second}
	arch, err := archive.Open(context.Background(), spec, archive.Options{LockWait: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer arch.Close()
	ledger, err := arch.Ledger(a.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ledger.Close()
	batch, _ := strconv.Atoi(os.Getenv(killBatch))
	out := bufio.NewWriter(os.Stdout)
	_, err = Restore(context.Background(), arch, ledger, a, Options{Connections: 3, BatchMessages: batch,
		NoMultiAppend: os.Getenv(killMode) == "single", Progress: lineReporter{out},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	out.Flush()
	if err != nil {
		t.Fatal(err)
	}
}

type lineReporter struct{ w *bufio.Writer }

func (lineReporter) Start(string, int64, int64) {}
func (lineReporter) Folder(string)              {}
func (l lineReporter) Message(int64)            { l.w.WriteString("m\n"); l.w.Flush() }
func (lineReporter) Warn(string)                {}
func (lineReporter) Done()                      {}

// A restore killed with SIGKILL at random points (seeded: set
// MAILARK_KILL_SEED to replay), then run again, ends with every message on
// the target exactly once: the ledger records a batch only after the
// server's OK, and what the server stored before a kill is found there.
func TestRestoreKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("long test")
	}
	seed := uint64(20240607)
	if s := os.Getenv("MAILARK_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	srv := testbed.Start(t)
	userA := srv.AddUser(t, "kill-src")
	source := seedAccount(t, srv, userA, 5, 400)
	total := countMessages(source)
	spec, arch := buildArchive(t, archive.Maildir, flatten(source), bedSpecialUse)
	arch.Close()

	const wantKills = 24
	kills, round := 0, 0
	for kills < wantKills {
		round++
		user := srv.AddUser(t, fmt.Sprintf("kill-dst-%d", round))
		os.RemoveAll(ledgerDir(spec)) // a fresh target: start a fresh ledger
		for {
			mode := []string{"multi", "single"}[rng.IntN(2)]
			batch := 1 + rng.IntN(60)
			killAfter := rng.IntN(total / 2)
			delay := time.Duration(rng.IntN(4000)) * time.Microsecond
			killed := runKillChild(t, srv, spec, user, mode, batch, killAfter, delay, kills < wantKills)
			if !killed {
				break
			}
			kills++
			t.Logf("round %d: killed after %d messages + %v (%s, batch %d)", round, killAfter, delay, mode, batch)
		}
		got := fetchAll(t, srv, user)
		for _, f := range sortedKeys(source) {
			if !reflect.DeepEqual(shaMultiset(source[f]), shaMultiset(got[f])) {
				t.Fatalf("round %d (seed %d): %s holds %d messages, want %d, each exactly once", round, seed, f, len(got[f]), len(source[f]))
			}
		}
		sameContent(t, source, got)
	}
	t.Logf("%d kill points over %d rounds, every message exactly once", kills, round)
}

func ledgerDir(spec string) string {
	_, path, _ := archive.ParseSpec(spec)
	return path + "/.mailark/ledgers"
}

// runKillChild runs one child restore and, if kill is set, SIGKILLs it
// once it has reported killAfter messages and delay has passed. It
// reports whether the child was killed before it finished.
func runKillChild(t *testing.T, srv *testbed.Server, spec, user, mode string, batch, killAfter int, delay time.Duration, kill bool) bool {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), killChildEnv+"="+spec,
		fmt.Sprintf("%s=%s %d %s", killTarget, srv.Host, srv.IMAPPort, user),
		killMode+"="+mode, killBatch+"="+strconv.Itoa(batch))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	seen, killed := 0, false
	for sc.Scan() {
		if sc.Text() != "m" {
			continue
		}
		seen++
		if kill && !killed && seen >= killAfter {
			time.Sleep(delay)
			killed = cmd.Process.Kill() == nil
		}
	}
	err = cmd.Wait()
	if killed {
		return true
	}
	if err != nil {
		t.Fatalf("child restore failed: %v", err)
	}
	return false
}
