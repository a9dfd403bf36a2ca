package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailark/mailark/internal/testbed"
)

// KillSeedEnv names the environment variable that replays a kill run: the
// seed every kill test prints.
const KillSeedEnv = "MAILARK_KILL_SEED"

// killSeed is the seed of this test binary's kill points: from KillSeedEnv
// when set, else the clock.
func killSeed(t *testing.T) uint64 {
	if v := os.Getenv(KillSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", KillSeedEnv, v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// killRound is one source/target pair that a run of mailark is killed on
// again and again until a run completes by itself.
type killRound struct {
	inv invocation
	// afterKill checks the invariants that must hold at every instant
	// (e.g. nothing deleted that the archive lacks); nil: none.
	afterKill func(t *testing.T)
	// final checks everything once a run has completed.
	final func(t *testing.T)
	// progress, when set, tells after a kill how many of the messages
	// had arrived: the figure shows that kills land mid-transfer.
	progress func(t *testing.T) (done, total int)
}

// killOp is one operation of the kill tests.
type killOp struct {
	name string
	// round prepares round number n (fresh archive, target or account).
	round func(t *testing.T, n int) *killRound
}

// maxKillsPerRound makes a round end in a completing run regularly, so the
// final checks run often; a round also ends when a run finishes before its
// kill arrives.
const maxKillsPerRound = 6

// killStats is what one operation's kill run tried.
type killStats struct {
	kills, rounds, completedEarly int
	midway                        int // kills that left a partial copy
	calibration                   time.Duration
}

// killAnywhere calibrates the operation with one uninterrupted round, then
// kills runs with SIGKILL after random delays spread over that duration
// until `points` kills have landed, rerunning each round to completion and
// checking it.
func killAnywhere(t *testing.T, op killOp, points int, seed uint64) killStats {
	rng := rand.New(rand.NewPCG(seed, uint64(len(op.name))))
	var st killStats
	home := t.TempDir()

	first := op.round(t, 0)
	r := mustRun(t, home, first.inv)
	first.final(t)
	st.calibration = r.elapsed
	span := r.elapsed + r.elapsed/5 // a little past the end: late kills hit the closing steps

	for round := 1; st.kills < points && round <= points*6; round++ {
		kr := op.round(t, round)
		st.rounds++
		for inRound := 0; ; inRound++ {
			inv := kr.inv
			if inRound < maxKillsPerRound && st.kills < points {
				inv.killAfter = time.Duration(rng.Int64N(int64(span))) + time.Millisecond
			}
			res := run(t, home, inv)
			if res.killed {
				st.kills++
				if kr.afterKill != nil {
					kr.afterKill(t)
				}
				if kr.progress != nil {
					if done, total := kr.progress(t); done > 0 && done < total {
						st.midway++
					}
				}
				continue
			}
			if res.code != 0 {
				t.Fatalf("%s round %d: the run after %d kill(s) failed (seed %d):\n%s", op.name, round, inRound, seed, res)
			}
			if inv.killAfter > 0 {
				st.completedEarly++
				if inRound == 0 {
					// A whole run from scratch beat its kill: the machine
					// got faster than at calibration (less parallel load),
					// so spread the next kills over this run instead.
					span = max(res.elapsed+res.elapsed/5, 20*time.Millisecond)
				}
			}
			break
		}
		kr.final(t)
		if t.Failed() {
			t.Fatalf("%s round %d failed its checks (replay with %s=%d)", op.name, round, KillSeedEnv, seed)
		}
	}
	if st.kills < points {
		t.Fatalf("%s: only %d of %d kills landed in %d rounds; the runs finish before the kill arrives", op.name, st.kills, points, st.rounds)
	}
	t.Logf("%s: %d SIGKILLs (%d left a partial copy) over %d rounds (+%d runs that finished first), calibration run %v, seed %d",
		op.name, st.kills, st.midway, st.rounds, st.completedEarly, st.calibration.Round(time.Millisecond), seed)
	return st
}

// killFixture is the Dovecot and the seeded source account the kill tests
// share.
type killFixture struct {
	s        *testbed.Server
	source   string // IMAP source account
	folders  []string
	want     sums // what the source holds
	inbox    []testbed.Message
	mu       sync.Mutex
	nextUser int
}

func newKillFixture(t *testing.T, messages int) *killFixture {
	s := testbed.Start(t)
	fx := &killFixture{s: s, folders: []string{"INBOX", "Sent", "Work/2024"}}
	fx.source = s.AddUser(t, "source")
	fx.want = seed(t, s, fx.source, 42, messages, fx.folders...)
	fx.inbox = testbed.GenMessages(43, messages/2, testbed.GenOptions{MaxAttachment: 256 << 10})
	return fx
}

// user adds a fresh account.
func (fx *killFixture) user(t *testing.T, prefix string) string {
	fx.mu.Lock()
	fx.nextUser++
	n := fx.nextUser
	fx.mu.Unlock()
	return fx.s.AddUser(t, fmt.Sprintf("%s%d", prefix, n))
}

var passwordEnv = []string{"MAILARK_PASSWORD=" + testbed.Password}

func formatFor(round int) string {
	if round%2 == 0 {
		return "maildir"
	}
	return "mbox"
}

// checkArchive compares an archive with what it must hold and proves that
// Dovecot and Python's mailbox read it.
func (fx *killFixture) checkArchive(t *testing.T, what, format, root string, want sums, foreign bool) {
	t.Helper()
	got := archiveSums(t, format+":"+root)
	if d := diffSums(got, want); d != "" {
		t.Errorf("%s: archive differs from the source: %s", what, d)
	}
	if foreign {
		checkForeignReaders(t, fx.s, fx.source, format, root, want)
	}
}

func (fx *killFixture) fetchIMAP(t *testing.T, points int, seed uint64) killStats {
	return killAnywhere(t, killOp{name: "fetch IMAP", round: func(t *testing.T, n int) *killRound {
		format := formatFor(n)
		root := filepath.Join(t.TempDir(), "archive")
		return &killRound{
			inv:      invocation{args: []string{"fetch", "--connections", "2", fx.s.URL("imap", fx.source), format + ":" + root}, env: passwordEnv},
			progress: archiveProgress(format, root, fx.want.total()),
			final: func(t *testing.T) {
				fx.checkArchive(t, fmt.Sprintf("fetch IMAP round %d (%s)", n, format), format, root, fx.want, n <= 2)
			},
		}
	}}, points, seed)
}

func (fx *killFixture) fetchPOP3(t *testing.T, points int, seed uint64, deleting bool) killStats {
	name := "fetch POP3"
	if deleting {
		name += " --delete"
	}
	var shared struct {
		once  sync.Once
		user  string
		inbox sums
	}
	return killAnywhere(t, killOp{name: name, round: func(t *testing.T, n int) *killRound {
		user := ""
		var inbox sums
		if deleting {
			// --delete empties the box: every round needs its own.
			user = fx.user(t, "pop")
			fx.s.Import(t, user, fx.inbox)
			inbox = serverSums(t, fx.s, user, "INBOX")
		} else {
			shared.once.Do(func() {
				shared.user = fx.user(t, "pop")
				fx.s.Import(t, shared.user, fx.inbox)
				shared.inbox = serverSums(t, fx.s, shared.user, "INBOX")
			})
			user, inbox = shared.user, shared.inbox
		}
		format := formatFor(n)
		root := filepath.Join(t.TempDir(), "archive")
		args := []string{"fetch", fx.s.URL("pop3", user), format + ":" + root}
		if deleting {
			args = append(args, "--delete")
		}
		kr := &killRound{inv: invocation{args: args, env: passwordEnv}, progress: archiveProgress(format, root, inbox.total())}
		what := fmt.Sprintf("%s round %d (%s)", name, n, format)
		kr.final = func(t *testing.T) {
			fx.checkArchive(t, what, format, root, inbox, n <= 2)
			if deleting {
				if left := serverSums(t, fx.s, user, "INBOX"); left.total() != 0 {
					t.Errorf("%s: %d messages left on the server after a completed --delete run", what, left.total())
				}
			}
		}
		if deleting {
			kr.afterKill = func(t *testing.T) { fx.nothingDeletedUnarchived(t, what, user, format, root, inbox) }
		}
		return kr
	}}, points, seed)
}

// count is the number of messages in user's folders, by STATUS: a killed
// client's last APPEND may still be committing inside Dovecot, so a full
// read could race it.
func (fx *killFixture) count(t *testing.T, user string) int {
	n := 0
	for _, f := range fx.folders {
		if out, err := fx.s.RunDoveadm(nil, "-f", "flow", "mailbox", "status", "-u", user, "messages", f); err == nil {
			v, _ := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(string(out)), "messages="))
			n += v
		}
	}
	return n
}

// archiveProgress counts the messages an archive holds (0 before it exists).
func archiveProgress(format, root string, total int) func(t *testing.T) (int, int) {
	return func(t *testing.T) (int, int) {
		return archiveSumsIfAny(t, format+":"+root).total(), total
	}
}

// nothingDeletedUnarchived checks, right after a kill, that every message
// gone from the server is in the archive (as far as its committed index
// shows, which is what the next run will see).
func (fx *killFixture) nothingDeletedUnarchived(t *testing.T, what, user, format, root string, original sums) {
	t.Helper()
	// A kill right after QUIT leaves Dovecot expunging the DELEted
	// messages for a moment; read the box once that is over.
	time.Sleep(300 * time.Millisecond)
	left := serverSums(t, fx.s, user, "INBOX")
	if n := deletedUnarchived(original["INBOX"], left["INBOX"], archiveSumsIfAny(t, format+":"+root).all()); n > 0 {
		t.Errorf("%s: after a kill, %d message(s) were deleted from the server but are not in the archive", what, n)
	}
}

func (fx *killFixture) restore(t *testing.T, points int, seed uint64) killStats {
	// One archive per format, fetched once, restored into a fresh account
	// each round.
	roots := map[string]string{}
	home := t.TempDir()
	for _, format := range []string{"maildir", "mbox"} {
		roots[format] = filepath.Join(t.TempDir(), "archive")
		mustRun(t, home, invocation{args: []string{"fetch", fx.s.URL("imap", fx.source), format + ":" + roots[format]}, env: passwordEnv})
	}
	return killAnywhere(t, killOp{name: "restore", round: func(t *testing.T, n int) *killRound {
		format := formatFor(n)
		target := fx.user(t, "restore")
		return &killRound{
			inv:      invocation{args: []string{"restore", "--connections", "2", format + ":" + roots[format], fx.s.URL("imap", target)}, env: passwordEnv},
			progress: func(t *testing.T) (int, int) { return fx.count(t, target), fx.want.total() },
			final: func(t *testing.T) {
				got := serverSums(t, fx.s, target, fx.folders...)
				if d := diffSums(got, fx.want); d != "" {
					t.Errorf("restore round %d (%s): target differs from the archive: %s", n, format, d)
				}
			},
		}
	}}, points, seed)
}

func (fx *killFixture) migrate(t *testing.T, points int, seed uint64) killStats {
	return killAnywhere(t, killOp{name: "migrate", round: func(t *testing.T, n int) *killRound {
		format := formatFor(n)
		target := fx.user(t, "migrate")
		root := filepath.Join(t.TempDir(), "archive")
		home := t.TempDir()
		return &killRound{
			inv: invocation{args: []string{"migrate", "--connections", "2", fx.s.URL("imap", fx.source), fx.s.URL("imap", target), "--archive", format + ":" + root}, env: passwordEnv},
			progress: func(t *testing.T) (int, int) {
				// Both halves count: the archive filling, then the target.
				done, total := archiveProgress(format, root, fx.want.total())(t)
				return done + fx.count(t, target), 2 * total
			},
			final: func(t *testing.T) {
				what := fmt.Sprintf("migrate round %d (%s)", n, format)
				fx.checkArchive(t, what, format, root, fx.want, false)
				if d := diffSums(serverSums(t, fx.s, target, fx.folders...), fx.want); d != "" {
					t.Errorf("%s: target differs from the source: %s", what, d)
				}
				r := run(t, home, invocation{args: []string{"verify", format + ":" + root, fx.s.URL("imap", target)}, env: passwordEnv})
				if r.code != 0 {
					t.Errorf("%s: verify after the migration:\n%s", what, r)
				}
			},
		}
	}}, points, seed)
}

// TestKillAnywhere kills fetch (IMAP; POP3 with and without --delete),
// restore and migrate with SIGKILL at seeded random points, reruns each to
// completion and checks that every source message is in the archive or
// target exactly once, byte-exact, that no message left the POP3 server
// before the archive held it, and that Dovecot and Python's mailbox read the
// archive. `make test` tries a few points per operation; the stress build
// (`make test-stress`) at least 50.
func TestKillAnywhere(t *testing.T) {
	seed := killSeed(t)
	t.Logf("kill seed %d (replay with %s=%d)", seed, KillSeedEnv, seed)
	fx := newKillFixture(t, killMessages)
	ops := []struct {
		name string
		run  func(t *testing.T) killStats
	}{
		{"fetch-imap", func(t *testing.T) killStats { return fx.fetchIMAP(t, killPoints, seed) }},
		{"fetch-pop3", func(t *testing.T) killStats { return fx.fetchPOP3(t, killPoints, seed, false) }},
		{"fetch-pop3-delete", func(t *testing.T) killStats { return fx.fetchPOP3(t, killPoints, seed, true) }},
		{"restore", func(t *testing.T) killStats { return fx.restore(t, killPoints, seed) }},
		{"migrate", func(t *testing.T) killStats { return fx.migrate(t, killPoints, seed) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			t.Parallel()
			op.run(t)
		})
	}
}
