package imapconn

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// kindError is an error with a mailerr kind whose message is written in
// full by the caller (mailerr.E always appends ": cause", which puts the
// hint before the cause), while errors.Is/As still reach both the kind
// and the cause.
type kindError struct {
	msg   string
	kind  error
	cause error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

// shortCause is the innermost, most telling part of a network error:
// "connection refused", "no such host", "i/o timeout".
func shortCause(err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		if dns.IsNotFound {
			return "no such host"
		}
		return dns.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return "timed out"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}
