// Package testkit holds the small pieces many packages' tests need: a
// fixed account secret and a buffer that protocol tracers and progress
// displays may write to from several goroutines.
package testkit

import (
	"bytes"
	"context"
	"sync"
)

// Secret is a fixed password or token, an account.SecretSource for test
// accounts.
type Secret string

// Secret returns the password itself.
func (s Secret) Secret(context.Context) (string, error) { return string(s), nil }

// Describe names the source in errors, never the password.
func (s Secret) Describe() string { return "test secret" }

// Buffer is a bytes.Buffer safe for concurrent use: traces and displays
// write from the goroutines of a run while the test reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String is everything written since the last Reset.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Reset empties the buffer.
func (s *Buffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}
