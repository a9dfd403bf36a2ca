package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailark/mailark/internal/cli/config"
	"github.com/mailark/mailark/internal/cli/termbar"
	"github.com/mailark/mailark/internal/mailerr"
)

// job is one unit of work of a command or of a config file: a fetch, a
// restore, or a migrate (fetch, restore of the archive and of the extra
// local trees, verify).
type job struct {
	name    string
	kind    config.Kind
	archive string // the archive written (fetch, migrate) or read (restore)
	source  string // for messages: account without secret
	target  string
	dryRun  bool
	retries int

	fetch   *FetchRequest
	restore []RestoreRequest // migrate: the archive first, then each --add
	verify  []VerifyRequest  // migrate: every tree restored
}

func (j *job) label() string {
	if j.name != "" {
		return j.name
	}
	return string(j.kind)
}

// jobResult is what a job did; it is also the job's --json object.
type jobResult struct {
	Type     string        `json:"type"` // "job"
	Name     string        `json:"job,omitempty"`
	Kind     string        `json:"kind"`
	Source   string        `json:"source,omitempty"`
	Target   string        `json:"target,omitempty"`
	Archive  string        `json:"archive"`
	DryRun   bool          `json:"dry_run,omitempty"`
	Status   string        `json:"status"` // ok | partial | failed
	ExitCode int           `json:"exit_code"`
	Error    string        `json:"error,omitempty"`
	Attempts int           `json:"attempts"`
	Seconds  float64       `json:"duration_seconds"`
	Fetch    *Stats        `json:"fetch,omitempty"`
	Restore  *Stats        `json:"restore,omitempty"`
	Verify   *VerifyReport `json:"verify,omitempty"`

	err      error
	duration time.Duration
}

func (r *jobResult) finish(err error, d time.Duration) {
	r.err = err
	r.duration = d
	r.Seconds = d.Round(time.Millisecond).Seconds()
	r.ExitCode = mailerr.ExitCode(err)
	switch {
	case err == nil:
		r.Status = "ok"
	case r.ExitCode == mailerr.ExitPartial:
		r.Status = "partial"
	default:
		r.Status = "failed"
	}
	if err != nil {
		r.Error = oneLine(err.Error())
	}
}

// runJob runs one job to its end. It never panics on a failed step: the
// error is in the result, with the stats of what was done before.
func (a *app) runJob(ctx context.Context, s *session, d *termbar.Display, j *job) *jobResult {
	start := time.Now()
	r := &jobResult{Type: "job", Name: j.name, Kind: string(j.kind), Source: j.source, Target: j.target,
		Archive: j.archive, DryRun: j.dryRun}
	log := s.logger.With("job", j.label())
	log.Info("job started", "kind", j.kind, "archive", j.archive, "source", j.source, "target", j.target, "dry_run", j.dryRun)
	err := a.runSteps(ctx, s, d, j, r)
	r.finish(err, time.Since(start))
	if err != nil {
		log.Info("job ended", "status", r.Status, "exit_code", r.ExitCode, "error", r.Error, "seconds", r.Seconds)
	} else {
		log.Info("job ended", "status", r.Status, "seconds", r.Seconds)
	}
	return r
}

// runSteps runs fetch, restores and verify in order. A partial step (some
// folders failed) does not stop the next one: what was fetched is still
// worth restoring. Any other failure stops the job.
func (a *app) runSteps(ctx context.Context, s *session, d *termbar.Display, j *job, r *jobResult) error {
	var partial error
	keep := func(err error) error {
		if err != nil && mailerr.ExitCode(err) == mailerr.ExitPartial {
			if partial == nil {
				partial = err
			}
			return nil
		}
		return err
	}
	label := j.label()
	if j.fetch != nil {
		req := *j.fetch
		rep := s.reporter(d, label)
		req.Progress, req.Logger = rep, s.logger.With("job", label)
		began := time.Now()
		st, attempts, err := retryStep(ctx, a, s, j, "fetch", func(ctx context.Context) (Stats, error) {
			return a.env.Engine.Fetch(ctx, req)
		})
		st.setDuration(time.Since(began))
		rep.Done()
		r.Attempts += attempts
		r.Fetch = &st
		if err := keep(err); err != nil {
			return err
		}
	}
	for i := range j.restore {
		req := j.restore[i]
		rep := s.reporter(d, label)
		req.Progress, req.Logger = rep, s.logger.With("job", label)
		began := time.Now()
		st, attempts, err := retryStep(ctx, a, s, j, "restore", func(ctx context.Context) (Stats, error) {
			return a.env.Engine.Restore(ctx, req)
		})
		st.setDuration(time.Since(began))
		rep.Done()
		r.Attempts += attempts
		r.Restore = addStats(r.Restore, st)
		if err := keep(err); err != nil {
			return err
		}
	}
	for i := range j.verify {
		req := j.verify[i]
		req.Logger = s.logger.With("job", label)
		rep, attempts, err := retryStep(ctx, a, s, j, "verify", func(ctx context.Context) (VerifyReport, error) {
			return a.env.Engine.Verify(ctx, req)
		})
		r.Attempts += attempts
		if r.Verify == nil {
			r.Verify = &VerifyReport{}
		}
		r.Verify.Folders = append(r.Verify.Folders, rep.Folders...)
		if err != nil {
			return err
		}
	}
	if r.Verify != nil {
		if lost := missingOnServer(*r.Verify); lost > 0 {
			return mailerr.E(mailerr.ErrMismatch, nil, "verify after migrate: %s archived but not on %s; run the same migrate again to upload them",
				plural(lost, "message", "messages"), j.target)
		}
	}
	return partial
}

// missingOnServer counts archive messages the target lacks. After a
// migrate only that direction is an error: the target may rightly hold
// mail the archive never had.
func missingOnServer(r VerifyReport) int64 {
	var n int64
	for _, f := range r.Folders {
		n += f.MissingOnServer
	}
	return n
}

func addStats(acc *Stats, st Stats) *Stats {
	if acc == nil {
		return &st
	}
	acc.Folders += st.Folders
	acc.Messages += st.Messages
	acc.Bytes += st.Bytes
	acc.Skipped += st.Skipped
	acc.Deleted += st.Deleted
	acc.Failed += st.Failed
	acc.Created += st.Created
	acc.PerFolder = append(acc.PerFolder, st.PerFolder...)
	acc.Warnings = append(acc.Warnings, st.Warnings...)
	acc.duration += st.duration
	acc.Seconds = acc.duration.Round(time.Millisecond).Seconds()
	return acc
}

// retryDelays is the backoff between attempts after a network error; the
// last delay repeats. Each attempt reopens the archive (repairing what an
// interrupted attempt left) and, fetch and restore being incremental,
// resumes where the previous one stopped.
var retryDelays = []time.Duration{2 * time.Second, 8 * time.Second, 30 * time.Second}

// retryable: only network trouble is worth another try. A wrong password,
// an untrusted certificate or a bad argument will not fix itself, and
// retrying a login may lock the account.
func retryable(err error) bool {
	if err == nil || !errors.Is(err, mailerr.ErrNetwork) {
		return false
	}
	for _, permanent := range []error{mailerr.ErrAuth, mailerr.ErrUsage, mailerr.ErrTLS, mailerr.ErrInterrupted,
		mailerr.ErrLocked, mailerr.ErrDamaged, mailerr.ErrLocalIO, context.Canceled} {
		if errors.Is(err, permanent) {
			return false
		}
	}
	return true
}

// retryStep runs op, retrying network errors j.retries times with
// backoff. It returns the last result, the number of attempts and the
// last error.
func retryStep[T any](ctx context.Context, a *app, s *session, j *job, step string, op func(context.Context) (T, error)) (T, int, error) {
	attempts := 0
	for {
		attempts++
		res, err := op(ctx)
		if !retryable(err) || attempts > j.retries || ctx.Err() != nil {
			return res, attempts, err
		}
		wait := retryDelays[min(attempts-1, len(retryDelays)-1)]
		s.logger.Info(fmt.Sprintf("%s failed, retrying in %s", step, wait), "job", j.label(),
			"attempt", attempts, "error", oneLine(err.Error()))
		if serr := a.env.Sleep(ctx, wait); serr != nil {
			return res, attempts, err
		}
	}
}
