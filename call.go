//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"reflect"
)

// Call runs f(ctx, arg) once in a fresh child process and returns its
// result as soon as it arrives (the child, which has nothing left to do,
// is reaped in the background). If the function returns an error, Call returns a *RemoteError
// with its text; if the child dies (a signal, os.Exit), an *ExitError. If
// ctx ends first, the child is killed and reaped, and Call returns
// ctx.Err().
func (f *Func[A, R]) Call(ctx context.Context, arg A) (R, error) {
	if ctx == nil {
		var zero R
		return zero, errNilContext
	}
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	p := f.Process(arg)
	if err := p.Start(); err != nil {
		return zero, err
	}
	// The result is back before the child has finished exiting: return
	// then; the child is reaped in the background.
	select {
	case <-p.settled:
	case <-ctx.Done():
		p.Kill()
		<-p.done
		return zero, ctx.Err()
	}
	if !p.gotRes {
		if err := p.exitErr(); err != nil {
			return zero, err
		}
		msg := "exited without a result"
		if p.msg != "" {
			msg += ": " + p.msg
		}
		return zero, &ExitError{Name: p.Name, Pid: p.pid, ExitCode: p.code, Message: msg}
	}
	switch p.status {
	case resultOK:
		var r R
		if err := decodeValue(p.result, &r); err != nil {
			return zero, err
		}
		return r, nil
	default:
		return zero, &RemoteError{Text: p.msg, Panic: p.status == resultPanic}
	}
}

func reflectTypeOf(v any) reflect.Type { return reflect.TypeOf(v) }
