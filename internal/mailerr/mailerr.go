// Package mailerr holds the error kinds that decide mailark's exit codes.
//
// Every error that reaches the user wraps exactly one of these sentinels
// (plus the underlying cause), so the command layer can map it to an exit
// code with errors.Is and still print the cause. The message of a wrapped
// error is one line saying what failed and what to do about it.
package mailerr

import (
	"errors"
	"fmt"
)

// Sentinel kinds. Test with errors.Is.
var (
	ErrUsage       = errors.New("usage error")               // bad flag, URL, config
	ErrAuth        = errors.New("authentication failed")     // wrong password, token refused
	ErrNetwork     = errors.New("network error")             // unreachable, reset, timeout
	ErrTLS         = errors.New("TLS error")                 // certificate not trusted, handshake failed
	ErrLocked      = errors.New("archive is locked")         // another run holds the archive
	ErrDamaged     = errors.New("archive is damaged")        // corrupt state or index that repair cannot fix
	ErrLocalIO     = errors.New("cannot write archive")      // disk full, permission denied
	ErrPartial     = errors.New("partial failure")           // some folders/messages failed, the rest done
	ErrServer      = errors.New("server refused")            // a command the server answered NO/BAD
	ErrInterrupted = errors.New("interrupted")               // SIGINT/SIGTERM
	ErrMismatch    = errors.New("archive and server differ") // verify found differences
)

// Exit codes, documented in the README. Distinct per kind so cron wrappers
// and monitoring can tell a wrong password from an unreachable server.
const (
	ExitOK          = 0
	ExitFailure     = 1 // anything not classified below
	ExitUsage       = 2
	ExitPartial     = 3
	ExitAuth        = 4
	ExitNetwork     = 5
	ExitTLS         = 6
	ExitLocked      = 7
	ExitDamaged     = 8
	ExitLocalIO     = 9
	ExitServer      = 10
	ExitMismatch    = 11
	ExitInterrupted = 130
)

// kindCodes is ordered: the first kind an error wraps decides its code, so
// a partial failure caused by an auth error still reads as auth.
var kindCodes = []struct {
	kind error
	code int
}{
	{ErrInterrupted, ExitInterrupted},
	{ErrUsage, ExitUsage},
	{ErrAuth, ExitAuth},
	{ErrTLS, ExitTLS},
	{ErrNetwork, ExitNetwork},
	{ErrLocked, ExitLocked},
	{ErrDamaged, ExitDamaged},
	{ErrLocalIO, ExitLocalIO},
	{ErrServer, ExitServer},
	{ErrMismatch, ExitMismatch},
	{ErrPartial, ExitPartial},
}

// ExitCode maps an error to the process exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	for _, kc := range kindCodes {
		if errors.Is(err, kc.kind) {
			return kc.code
		}
	}
	return ExitFailure
}

// E wraps cause with a kind and a message: "msg: cause". The kind is
// reachable with errors.Is, the cause with errors.Is/As. cause may be nil.
func E(kind error, cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cause == nil {
		return &kindError{kind: kind, msg: msg}
	}
	return &kindError{kind: kind, msg: msg, cause: cause}
}

type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string {
	if e.cause == nil {
		return e.msg
	}
	return e.msg + ": " + e.cause.Error()
}

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}
