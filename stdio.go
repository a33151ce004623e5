//go:build linux && (amd64 || arm64)

package multiproc

import (
	"io"
	"os"
	"reflect"
	"sync"
	"time"
)

// childStdio is where a child's standard output and error go: files are
// what the child gets; a writer that is not a file is fed from a pipe by a
// goroutine of this process.
type childStdio struct {
	files  [2]*os.File
	pipes  []*os.File    // write ends made here, closed once the child has its copies
	reads  []*os.File    // their read ends, closed once the copies are done
	copied chan struct{} // closed when every copy has finished; nil if none
}

// copyGrace bounds how long Join waits, after the child has exited, for
// the output of processes it started that still hold its pipe.
const copyGrace = time.Second

// newStdio prepares out and errw (nil: this process's own) for a child.
func newStdio(out, errw io.Writer) (*childStdio, error) {
	s := &childStdio{}
	var wg sync.WaitGroup
	for i, w := range []io.Writer{out, errw} {
		switch f := w.(type) {
		case nil:
			s.files[i] = []*os.File{os.Stdout, os.Stderr}[i]
		case *os.File:
			s.files[i] = f
		default:
			if i == 1 && sameWriter(out, errw) {
				// One writer, one pipe: its Write is never called concurrently.
				s.files[1] = s.files[0]
				continue
			}
			r, pw, err := os.Pipe()
			if err != nil {
				s.started()
				wg.Wait()
				s.closeReads()
				return nil, errorf("a pipe for a child's output: %w", err)
			}
			s.files[i], s.pipes, s.reads = pw, append(s.pipes, pw), append(s.reads, r)
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(w, r)
			}()
		}
	}
	if len(s.reads) > 0 {
		s.copied = make(chan struct{})
		go func() {
			wg.Wait()
			close(s.copied)
		}()
	}
	return s, nil
}

func sameWriter(a, b io.Writer) bool {
	return reflect.TypeOf(a) == reflect.TypeOf(b) && reflect.TypeOf(a).Comparable() && a == b
}

// started closes this process's write ends once the child has its copies
// (or will never start), so that the copies end when the child's do.
func (s *childStdio) started() {
	for _, f := range s.pipes {
		f.Close()
	}
	s.pipes = nil
}

// wait waits for the copies to finish, at most copyGrace: a process the
// child started may hold the pipe open for ever.
func (s *childStdio) wait() {
	if s.copied == nil {
		return
	}
	select {
	case <-s.copied:
	case <-time.After(copyGrace):
		s.closeReads()
		<-s.copied
	}
	s.closeReads()
}

func (s *childStdio) closeReads() {
	for _, f := range s.reads {
		f.Close()
	}
}
