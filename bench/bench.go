package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailark/mailark/internal/testbed"
)

// Accounts on the private Dovecot.
const (
	accountUser = "bench"    // the 5,000-message IMAP account
	popUser     = "benchpop" // the same INBOX, for POP3
	bigUser     = "benchbig" // one 50 MB message, for the memory check
)

// corpusSeed fixes the generated mail; change it and every figure changes.
const corpusSeed = 20250601

// corpusVersion names the cached staging trees; bump it whenever the
// generator changes so an old cache is never used.
const corpusVersion = "v2"

// bench holds everything the scenarios share.
type bench struct {
	o    options
	logf func(string, ...any)
	tb   *benchTB
	srv  *testbed.Server
	self string // this executable: the raw clients run as its subcommands

	mailark        string // built binary
	fetchMissing   string // why `mailark fetch` cannot be measured ("" when it can)
	restoreMissing string // why `mailark restore` cannot be measured
	peers          map[string]string

	seeded  corpusStats // the account as seeded
	account corpusStats // current size of accountUser (grows with the 50-new runs)
	pop     corpusStats
	big     corpusStats
	added   corpusStats // the last batch of new messages

	imapProxy, pop3Proxy *latencyProxy
	rttDirect, rttProxy  time.Duration
	proxyThroughput      float64

	sections []section
	trash    *trash // what runs leave, deleted at the end (see trash.go)
	userSeq  int
	elapsed  time.Duration
	dovecot  string
}

func setup(ctx context.Context, tb *benchTB, o options, logf func(string, ...any)) (*bench, error) {
	b := &bench{o: o, logf: logf, tb: tb}
	var err error
	if b.trash, err = newTrash(filepath.Join(o.work, "trash"), trashMinFree, logf); err != nil {
		return nil, err
	}
	tb.Cleanup(func() { b.trash.close() })
	afterSync = b.trash.evict
	if b.self, err = os.Executable(); err != nil {
		return nil, err
	}
	launcherPath = filepath.Join(o.work, "bin", "measure")
	build := exec.CommandContext(ctx, "go", "build", "-o", launcherPath, "./bench/measure")
	build.Dir = o.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building the launcher: %w: %s", err, out)
	}
	b.buildMailark(ctx)
	b.peers = ensurePeers(ctx, logf)

	logf("starting the test bed's Dovecot")
	b.srv = testbed.Start(tb)
	b.dovecot = commandLine("dovecot", "--version")
	if err := b.seed(); err != nil {
		return nil, fmt.Errorf("seeding: %w", err)
	}
	if err := b.startProxies(); err != nil {
		return nil, err
	}
	// Warm Dovecot's caches (POP3 sizes, index) so that no program pays for
	// it in its first timed run.
	for _, args := range [][]string{
		{"raw-imap", b.srv.IMAPAddr(), accountUser, "none"},
		{"raw-pop3", b.srv.POP3Addr(), popUser, "none"},
		{"raw-imap", b.srv.IMAPAddr(), bigUser, "none"},
		{"raw-pop3", b.srv.POP3Addr(), bigUser, "none"},
	} {
		if r := timeChild(ctx, b.rawCommand(args...)); r.Err != nil {
			return nil, fmt.Errorf("warm-up %v: %w", args, r.Err)
		}
	}
	return b, nil
}

// buildMailark builds bin/mailark and finds out which commands exist, so
// that scenarios of commands still being written say so instead of failing.
func (b *bench) buildMailark(ctx context.Context) {
	b.mailark = filepath.Join(b.o.root, "bin", "mailark")
	if abs, err := filepath.Abs(b.mailark); err == nil {
		b.mailark = abs
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", b.mailark, "./cmd/mailark")
	cmd.Dir = b.o.root
	if out, err := cmd.CombinedOutput(); err != nil {
		why := "not available yet: cmd/mailark does not build (" + firstLine(string(out)) + ")"
		b.fetchMissing, b.restoreMissing = why, why
		b.logf("mailark: %s", why)
		return
	}
	b.fetchMissing = b.commandMissing(ctx, "fetch")
	b.restoreMissing = b.commandMissing(ctx, "restore")
	b.logf("mailark built: fetch %s, restore %s", orOK(b.fetchMissing), orOK(b.restoreMissing))
}

func (b *bench) commandMissing(ctx context.Context, name string) string {
	out, err := exec.CommandContext(ctx, b.mailark, name, "--help").CombinedOutput()
	if err != nil || strings.Contains(string(out), "unknown command") {
		return "not available yet: `mailark " + name + "` does not exist (" + firstLine(string(out)) + ")"
	}
	return ""
}

// seed creates the three accounts from the generated corpus. The corpus
// (staging maildirs) is cached in the work directory; Dovecot's copy is
// new on every run because the test bed starts from scratch.
func (b *bench) seed() error {
	start := time.Now()
	stage := filepath.Join(b.o.work, "corpus-"+corpusVersion)
	acct, err := cachedStage(filepath.Join(stage, "account"), planAccount(corpusSeed))
	if err != nil {
		return err
	}
	big, err := cachedStage(filepath.Join(stage, "big"), []msgSpec{bigMessageSpec()})
	if err != nil {
		return err
	}
	b.account, b.seeded, b.big = acct, acct, big
	b.logf("corpus ready (%d messages, %.0f MB) in %.1f s", acct.Messages, mb(acct.Bytes), time.Since(start).Seconds())

	for _, u := range []string{accountUser, popUser, bigUser} {
		b.srv.AddUser(b.tb, u)
	}
	imports := []struct {
		user, dir, query string
	}{
		{accountUser, filepath.Join(stage, "account"), "all"},
		{popUser, filepath.Join(stage, "account"), "mailbox INBOX"},
		{bigUser, filepath.Join(stage, "big"), "all"},
	}
	for _, im := range imports {
		if err := b.importTree(im.user, im.dir, im.query); err != nil {
			return err
		}
	}
	counts := map[string]int{}
	for _, u := range []string{accountUser, popUser, bigUser} {
		n, err := b.serverCount(u)
		if err != nil {
			return err
		}
		counts[u] = n
	}
	inbox := 0
	for _, f := range accountFolders {
		if f.Name == "INBOX" {
			inbox = f.Count
		}
	}
	b.pop = corpusStats{Messages: inbox, Bytes: inboxBytes(filepath.Join(stage, "account"))}
	if counts[accountUser] != acct.Messages || counts[popUser] != inbox || counts[bigUser] != 1 {
		return fmt.Errorf("seeded counts %v, want %d/%d/1", counts, acct.Messages, inbox)
	}
	b.logf("seeded %s (%d), %s (%d), %s (1) in %.1f s", accountUser, acct.Messages, popUser, inbox, bigUser, time.Since(start).Seconds())
	return nil
}

// cachedStage renders specs into dir unless a complete earlier rendering
// is there (marked by a stamp file written last).
func cachedStage(dir string, specs []msgSpec) (corpusStats, error) {
	stamp := filepath.Join(dir, ".complete")
	if data, err := os.ReadFile(stamp); err == nil {
		var st corpusStats
		if _, err := fmt.Sscanf(string(data), "%d %d", &st.Messages, &st.Bytes); err == nil {
			return st, nil
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return corpusStats{}, err
	}
	st, err := writeStagingMaildir(dir, specs)
	if err != nil {
		return st, err
	}
	return st, os.WriteFile(stamp, fmt.Appendf(nil, "%d %d\n", st.Messages, st.Bytes), 0o644)
}

func inboxBytes(stage string) int64 {
	var n int64
	entries, _ := os.ReadDir(filepath.Join(stage, "cur"))
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// importTree copies a staging maildir into an account with one doveadm
// import (the test bed's own Import takes messages in memory; this corpus
// is streamed to disk instead). doveadm reads the tree as the mail user
// and writes index files into it, so it gets a hard-linked copy inside the
// server's directory, which the mail user can reach, and the cache stays
// untouched.
func (b *bench) importTree(account, dir, query string) error {
	u, err := user.Lookup(testbed.VmailUser)
	if err != nil {
		return err
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	stage, err := os.MkdirTemp(b.srv.Dir, "stage-")
	if err != nil {
		return err
	}
	defer b.trash.discard(stage)
	tree := filepath.Join(stage, "mail")
	if out, err := exec.Command("cp", "-al", dir, tree).CombinedOutput(); err != nil {
		return fmt.Errorf("cp -al: %w: %s", err, out)
	}
	err = filepath.WalkDir(stage, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return err
	}
	args := append([]string{"import", "-s", "-u", account, "maildir:" + tree, ""}, strings.Fields(query)...)
	_, err = b.srv.RunDoveadm(nil, args...)
	return err
}

// serverCount is the number of messages in all folders of an account.
func (b *bench) serverCount(account string) (int, error) {
	out, err := b.srv.RunDoveadm(nil, "-f", "tab", "mailbox", "status", "-u", account, "messages", "*")
	if err != nil {
		return 0, err
	}
	total := 0
	for i, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		cols := strings.Split(l, "\t")
		if i == 0 || len(cols) < 2 {
			continue
		}
		n, err := strconv.Atoi(cols[len(cols)-1])
		if err != nil {
			return 0, fmt.Errorf("mailbox status: %q", l)
		}
		total += n
	}
	return total, nil
}

// freshUser creates a new empty account (restore targets).
func (b *bench) freshUser(prefix string) string {
	b.userSeq++
	return b.srv.AddUser(b.tb, fmt.Sprintf("%s%d", prefix, b.userSeq))
}

// dropUserMail removes an account's mail once checked, to keep the disk
// use of many restore runs bounded.
func (b *bench) dropUserMail(account string) {
	b.trash.discard(filepath.Join(b.srv.MailDir, account))
}

// trashMinFree is the free disk space below which the trash is emptied
// during the run. A full run discards about 25 GB.
const trashMinFree = 8 << 30

func (b *bench) startProxies() error {
	delay := b.o.latency / 2
	var err error
	if b.imapProxy, err = startLatencyProxy(b.srv.IMAPAddr(), delay); err != nil {
		return err
	}
	b.tb.Cleanup(func() { b.imapProxy.Close() })
	if b.pop3Proxy, err = startLatencyProxy(b.srv.POP3Addr(), delay); err != nil {
		return err
	}
	b.tb.Cleanup(func() { b.pop3Proxy.Close() })
	// Prove the added round trip: NOOPs direct and through the proxy.
	if b.rttDirect, err = measureIMAPRoundTrip(b.srv.IMAPAddr(), accountUser, testbed.Password, 20); err != nil {
		return err
	}
	if b.rttProxy, err = measureIMAPRoundTrip(b.proxyAddr(b.imapProxy), accountUser, testbed.Password, 20); err != nil {
		return err
	}
	if b.proxyThroughput, err = measureProxyThroughput(delay, 512<<20); err != nil {
		return err
	}
	b.logf("round trip: direct %.2f ms, through the proxy %.2f ms; proxy throughput %.0f MB/s",
		ms(b.rttDirect), ms(b.rttProxy), b.proxyThroughput/1e6)
	return nil
}

func (b *bench) proxyAddr(p *latencyProxy) string {
	return fmt.Sprintf("%s:%d", b.srv.Host, p.Port())
}

func (b *bench) rawCommand(args ...string) *exec.Cmd {
	cmd := exec.Command(b.self, args...)
	cmd.Env = append(os.Environ(), passwordEnv+"="+testbed.Password)
	return cmd
}

func commandLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return firstLine(string(out))
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(l)
}

func orOK(s string) string {
	if s == "" {
		return "ok"
	}
	return s
}

func mb(n int64) float64           { return float64(n) / 1e6 }
func ms(d time.Duration) float64   { return float64(d) / float64(time.Millisecond) }
func secs(d time.Duration) float64 { return d.Seconds() }

// printServe tells where the seeded accounts are (-serve).
func (b *bench) printServe() {
	fmt.Printf("IMAP %s, POP3 %s (+%s RTT: IMAP %s, POP3 %s)\n", b.srv.IMAPAddr(), b.srv.POP3Addr(),
		b.o.latency, b.proxyAddr(b.imapProxy), b.proxyAddr(b.pop3Proxy))
	fmt.Printf("users %s (account), %s (POP3 inbox), %s (50 MB); password %q; doveadm -c %s\n",
		accountUser, popUser, bigUser, testbed.Password, b.srv.Config)
	fmt.Println("waiting for ^C")
}
