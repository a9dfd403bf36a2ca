package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/mailark/mailark/internal/account"
	"github.com/mailark/mailark/internal/cli/config"
	"github.com/mailark/mailark/internal/cli/termbar"
	"github.com/mailark/mailark/internal/mailerr"
)

// defaultParallelJobs is how many independent jobs run at once.
const defaultParallelJobs = 2

// runOptions are the flags and arguments of `mailark run`.
type runOptions struct {
	Config   string
	Jobs     []string
	Parallel int
	DryRun   bool
	Output   outputFlags
	LockWait time.Duration
	Retries  int

	// Set records flags given on the command line; they override the
	// config file's settings.
	Set map[string]bool
}

func (a *app) runCommand() *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [--config FILE] [JOB...]",
		Short: "Run the jobs of a config file (for cron and systemd timers)",
		Long: `Run executes the [[job]] tables of a TOML config file: all of them, or the
ones named. Each job is a fetch (source), a restore (target) or a migrate
(both). Independent jobs run in parallel (--jobs); jobs on the same archive
run one after the other, in file order. A job that fails on a network error
is retried with backoff (2s, 8s, 30s) and resumes where it stopped.

The config file is $XDG_CONFIG_HOME/mailark/config.toml (usually
~/.config/mailark/config.toml) unless --config is given. Relative paths in it
are relative to the file's directory. See docs/cron.md for the keys.

Without a terminal on stderr a successful run prints nothing, so cron mails
only failures. Failed jobs are reported one line each on stderr; the run then
exits 3 when some jobs succeeded, or with the first failed job's code when
none did.`,
		Example: `  mailark run                          # every job of ~/.config/mailark/config.toml
  mailark run --config /etc/mailark.toml work home
  mailark run --json --log-file /var/log/mailark.log
  # crontab: nightly at 03:17, mail only on failure
  17 3 * * *  mailark run --log-file ~/.local/state/mailark.log`,
		RunE: func(cmd *cobra.Command, args []string) error {
			a.begin()
			o.Jobs = args
			o.Set = map[string]bool{}
			cmd.Flags().Visit(func(f *pflag.Flag) { o.Set[f.Name] = true })
			return a.runRun(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Config, "config", "c", "", "the config `FILE` (default $XDG_CONFIG_HOME/mailark/config.toml)")
	f.IntVarP(&o.Parallel, "jobs", "j", defaultParallelJobs, "run up to `N` independent jobs at once (config: parallel_jobs)")
	f.BoolVarP(&o.DryRun, "dry-run", "n", false, "show what every job would do; change nothing")
	f.DurationVar(&o.LockWait, "lock-wait", 0, "wait up to `DURATION` for another run to release an archive (config: lock_wait)")
	f.IntVar(&o.Retries, "retries", defaultRetries, "retry a job this many times after a network error (config: retries)")
	o.Output.register(cmd)
	return cmd
}

// runRun is `mailark run` without cobra, for tests.
func (a *app) runRun(ctx context.Context, o runOptions) error {
	if o.Set == nil {
		o.Set = map[string]bool{}
	}
	path := o.Config
	if path == "" {
		var err error
		if path, err = config.DefaultPath(); err != nil {
			return err
		}
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	o.applyConfig(cfg)
	if o.Parallel < 1 || o.Parallel > 64 {
		return usageErr("--jobs %d: use 1 to 64", o.Parallel)
	}
	selected, err := cfg.Select(o.Jobs)
	if err != nil {
		return err
	}
	s, err := newSession(a.env, o.Output)
	if err != nil {
		return err
	}
	defer s.Close()
	jobs := make([]*job, 0, len(selected))
	for _, cj := range selected {
		j, err := jobFromConfig(cj, filepath.Dir(path), s, o)
		if err != nil {
			return err
		}
		jobs = append(jobs, j)
	}
	start := time.Now()
	d := s.newDisplay()
	results := a.schedule(ctx, s, d, jobs, o.Parallel)
	if d != nil {
		d.Close()
	}
	err = runError(results)
	sum := summarize(results, time.Since(start), err)
	s.emit(sum)
	if len(results) > 1 {
		s.summary("run: %d jobs, %d ok, %d partial, %d failed, %s (%s) in %s", sum.Jobs, sum.OK, sum.Partial, sum.Failed,
			plural(sum.Messages, "message", "messages"), humanBytes(sum.Bytes), humanDuration(time.Since(start)))
	}
	return err
}

// applyConfig takes the config file's run settings where no flag was
// given.
func (o *runOptions) applyConfig(cfg *config.Config) {
	if !o.Set["jobs"] && cfg.ParallelJobs > 0 {
		o.Parallel = cfg.ParallelJobs
	}
	if !o.Set["lock-wait"] && cfg.LockWait > 0 {
		o.LockWait = time.Duration(cfg.LockWait)
	}
	if !o.Set["retries"] && cfg.Retries != nil {
		o.Retries = *cfg.Retries
	}
	if !o.Set["log-file"] && cfg.LogFile != "" {
		o.Output.LogFile = resolve(filepath.Dir(cfg.Path), cfg.LogFile)
	}
}

// schedule runs jobs, up to parallel at once. Jobs on the same archive run
// one after the other in file order (the archive's lock would stop the
// second anyway; waiting is the friendlier outcome). Each job is reported
// as soon as it ends.
func (a *app) schedule(ctx context.Context, s *session, d *termbar.Display, jobs []*job, parallel int) []*jobResult {
	results := make([]*jobResult, len(jobs))
	sem := make(chan struct{}, parallel)
	prev := map[string]chan struct{}{} // archive → done channel of the last job queued on it
	var wg sync.WaitGroup
	for i, j := range jobs {
		key := archiveKey(j.archive)
		wait := prev[key]
		done := make(chan struct{})
		prev[key] = done
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done)
			results[i] = a.runQueued(ctx, s, d, j, wait, sem)
			s.report(j, results[i])
			if results[i].err != nil && len(jobs) > 1 {
				s.errorLine("%s: %s", j.label(), results[i].err)
			}
		}()
	}
	wg.Wait()
	return results
}

// runQueued waits for the job's turn on its archive and for a free slot.
func (a *app) runQueued(ctx context.Context, s *session, d *termbar.Display, j *job, after <-chan struct{}, sem chan struct{}) *jobResult {
	cancelled := func() *jobResult {
		r := &jobResult{Type: "job", Name: j.name, Kind: string(j.kind), Archive: j.archive, Source: j.source, Target: j.target}
		r.finish(mailerr.E(mailerr.ErrInterrupted, ctx.Err(), "job %s not started", j.label()), 0)
		return r
	}
	if after != nil {
		select {
		case <-after:
		case <-ctx.Done():
			return cancelled()
		}
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return cancelled()
	}
	defer func() { <-sem }()
	return a.runJob(ctx, s, d, j)
}

// runError is the run's error: nil when every job succeeded; ErrPartial
// when some did; otherwise the first failure (its kind decides the exit
// code, e.g. 7 when the archive is locked).
func runError(results []*jobResult) error {
	var failed []*jobResult
	for _, r := range results {
		if r.err != nil {
			failed = append(failed, r)
		}
	}
	switch {
	case len(failed) == 0:
		return nil
	case len(results) == 1:
		return failed[0].err
	case len(failed) < len(results):
		names := make([]string, len(failed))
		for i, r := range failed {
			names[i] = resultLabel(r)
		}
		return mailerr.E(mailerr.ErrPartial, nil, "%d of %d jobs failed: %s", len(failed), len(results), strings.Join(names, ", "))
	}
	return fmt.Errorf("all %d jobs failed; %s: %w", len(results), resultLabel(failed[0]), failed[0].err)
}

func resultLabel(r *jobResult) string {
	if r.Name != "" {
		return r.Name
	}
	return r.Kind + " " + r.Archive
}

// resolve makes a path from a config file relative to the file's
// directory; ~/ is the home directory.
func resolve(dir, p string) string {
	switch {
	case p == "" || filepath.IsAbs(p):
		return p
	case p == "~" || strings.HasPrefix(p, "~/"):
		return expandHome(p)
	}
	return filepath.Join(dir, p)
}

// expandHome replaces a leading ~/ with the home directory (a shell does
// not, in --log-file=~/x or in a config file).
func expandHome(p string) string {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return p
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~"))
}

// resolveSpec applies resolve to the PATH of maildir:PATH / mbox:PATH.
// Another FORMAT: prefix is left alone for archiveSpec to reject.
func resolveSpec(dir, spec string) string {
	kind, path, ok := strings.Cut(spec, ":")
	switch {
	case ok && (kind == "maildir" || kind == "mbox"):
		return kind + ":" + resolve(dir, path)
	case ok && kind != "" && !strings.ContainsAny(kind, `/\.~`):
		return spec
	}
	return resolve(dir, spec)
}

// jobFromConfig turns a [[job]] table into a job; every error points at
// the line of the key at fault.
func jobFromConfig(cj *config.Job, dir string, s *session, o runOptions) (*job, error) {
	at := func(key string, err error) error {
		return cj.Errorf(key, "%s", oneLine(err.Error()))
	}
	conn := connFlags{Connections: cj.Connections, CAFile: resolve(dir, cj.CAFile), Plaintext: cj.Plaintext,
		Timeout: time.Duration(cj.Timeout), Retries: o.Retries}
	if conn.Connections == 0 {
		conn.Connections = defaultConnections
	}
	folders := folderFlags{Include: cj.Include, Exclude: cj.Exclude, SkipAllMail: cj.SkipAllMail}
	if err := folders.check(); err != nil {
		return nil, at("include", err)
	}
	pop := pop3Flags{Delete: cj.Delete, DeleteOlderThan: cj.DeleteOlderThan, MarkSeen: cj.MarkSeen}
	fm, err := parseFolderMap(cj.FolderMap)
	if err != nil {
		return nil, at("folder_map", err)
	}
	sourceSecret := secretFlags{File: resolve(dir, cj.PasswordFile), Command: cj.PasswordCommand, Env: cj.PasswordEnv,
		Inline: cj.Password, OAuthCommand: cj.OAuthTokenCommand}
	targetSecret := secretFlags{File: resolve(dir, cj.TargetPasswordFile), Command: cj.TargetPasswordCommand,
		Env: cj.TargetPasswordEnv, Inline: cj.TargetPassword, OAuthCommand: cj.TargetOAuthTokenCommand}
	buildSource := func() (*account.Account, error) {
		a, err := accountSpec{URL: cj.Source, CAFile: conn.CAFile, Plaintext: conn.Plaintext, Timeout: conn.Timeout,
			Secret: sourceSecret, flagPrefix: "password_", envNames: []string{EnvPassword}}.build(s)
		if err != nil {
			return nil, at("source", err)
		}
		if err := pop.check(a); err != nil {
			return nil, at("delete", err)
		}
		return a, nil
	}
	buildTarget := func(secret secretFlags) (*account.Account, error) {
		caFile := conn.CAFile
		if cj.TargetCAFile != "" || cj.Kind == config.KindMigrate {
			caFile = resolve(dir, cj.TargetCAFile)
		}
		a, err := accountSpec{URL: cj.Target, CAFile: caFile, Plaintext: conn.Plaintext, Timeout: conn.Timeout,
			Secret: secret, flagPrefix: "target_password_", envNames: []string{EnvTargetPassword, EnvPassword}}.build(s)
		if err != nil {
			return nil, at("target", err)
		}
		if err := requireIMAP(a, string(cj.Kind)); err != nil {
			return nil, at("target", err)
		}
		return a, nil
	}

	switch cj.Kind {
	case config.KindFetch:
		spec, err := archiveSpec(resolveSpec(dir, cj.Archive))
		if err != nil {
			return nil, at("archive", err)
		}
		src, err := buildSource()
		if err != nil {
			return nil, err
		}
		return fetchJob(cj.Name, src, spec, conn, folders, pop, o.LockWait, o.DryRun), nil
	case config.KindRestore:
		from, err := readableArchive(resolveSpec(dir, cj.Archive))
		if err != nil {
			return nil, at("archive", err)
		}
		secret := targetSecret
		if !secret.isSet() {
			secret = sourceSecret // restore has one account: password_* name its password
		}
		target, err := buildTarget(secret)
		if err != nil {
			return nil, err
		}
		return restoreJob(cj.Name, from, target, conn, fm, cj.Prefix, o.LockWait, o.DryRun), nil
	case config.KindMigrate:
		spec, err := archiveSpec(resolveSpec(dir, cj.Archive))
		if err != nil {
			return nil, at("archive", err)
		}
		src, err := buildSource()
		if err != nil {
			return nil, err
		}
		target, err := buildTarget(targetSecret)
		if err != nil {
			return nil, err
		}
		var adds []string
		for _, p := range cj.Add {
			path, err := readableArchive(resolveSpec(dir, p))
			if err != nil {
				return nil, at("add", err)
			}
			adds = append(adds, path)
		}
		return migrateJob(cj.Name, src, target, spec, adds, conn, folders, pop, fm, cj.Prefix, o.LockWait, o.DryRun), nil
	}
	return nil, cj.Errorf("kind", "unknown kind %q", cj.Kind)
}
