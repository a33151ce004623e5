//go:build linux && (amd64 || arm64)

package multiproc

import (
	"context"
	"encoding/binary"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// A task is what a child runs: a registered function or Runner type by
// name, with its encoded argument and the shareable objects inside it.
type taskKind byte

const (
	kindFunc taskKind = 1 + iota
	kindRunner
	kindWorker // a pool worker: its one item is the pool's Initializer, if any
)

// runFn runs a registered entry in a child from its encoded argument and
// returns the encoded result.
type runFn func(ctx context.Context, arg []byte, entries []handle.Entry, im *handle.Imports) ([]byte, error)

// batchFn runs a registered function over an encoded []A in a child and
// returns the encoded batch result (see appendBatch).
type batchFn func(ctx context.Context, args []byte) ([]byte, error)

// mainCalled is set by Main: registering after it is a mistake, since a
// child never runs main past Main and would not know the name.
var mainCalled atomic.Bool

// checkInit panics if Main has run: what registers must do so at package
// initialisation, in every process alike.
func checkInit(what, name string) {
	if mainCalled.Load() {
		panic(fmt.Sprintf("multiproc: %s(%q) called after Main: register at package initialisation (a package-level var or init), so that child processes, which never run main past Main, know it too", what, name))
	}
}

var (
	regMu      sync.RWMutex // guards the four maps below
	funcs      = map[string]runFn{}
	batches    = map[string]batchFn{}
	runners    = map[string]runFn{}
	runnerName = map[reflect.Type]string{}
)

func lookupBatch(name string) (batchFn, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	f, ok := batches[name]
	return f, ok
}

func lookup(kind taskKind, name string) (runFn, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	if kind == kindRunner {
		f, ok := runners[name]
		return f, ok
	}
	f, ok := funcs[name]
	return f, ok
}

// Func is a function registered under a name, so that a child process,
// the same binary started again, can find and run it. Make one with
// Register in a package-level var: registration must happen at package
// initialisation, in the parent and in every child alike.
type Func[A, R any] struct {
	name string
	fn   func(context.Context, A) (R, error)
}

// Register registers fn under name and returns the Func that runs it in
// other processes. Call it from a package-level var declaration or init,
// so that every process of the program registers the same functions
// before Main runs. It panics if name is empty or already registered.
//
// The argument A and the result R cross the process boundary by value
// (encoding/gob rules: exported fields; no channels or functions). A
// *Value, *Array, *Lock, *Semaphore, *Event, *Barrier, *Condition, *Conn,
// *Queue or *JoinableQueue in A — as A itself, an exported field of it at
// any depth of plain structs, or an element of a slice, array or map
// (keyed by strings, integers or bools) — arrives in the child as the
// same shared object.
func Register[A, R any](name string, fn func(ctx context.Context, arg A) (R, error)) *Func[A, R] {
	if name == "" {
		panic("multiproc: Register with an empty name")
	}
	if fn == nil {
		panic(fmt.Sprintf("multiproc: Register(%q) with a nil function", name))
	}
	checkInit("Register", name)
	f := &Func[A, R]{name: name, fn: fn}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := funcs[name]; dup {
		panic(fmt.Sprintf("multiproc: function %q registered twice", name))
	}
	funcs[name] = f.run
	batches[name] = f.runBatch
	return f
}

// Name returns the name the function was registered under.
func (f *Func[A, R]) Name() string { return f.name }

// run is the child side: decode, call, encode.
func (f *Func[A, R]) run(ctx context.Context, arg []byte, entries []handle.Entry, im *handle.Imports) ([]byte, error) {
	a, err := decodeArg[A](arg, entries, im)
	if err != nil {
		return nil, err
	}
	r, err := f.fn(ctx, a)
	if err != nil {
		return nil, userError{err}
	}
	return encodeValue(&r)
}

// runBatch is the child side of a batch: the args of a Map chunk as one
// []A, the results as one []R with a status per item.
func (f *Func[A, R]) runBatch(ctx context.Context, b []byte) ([]byte, error) {
	var args []A
	if err := decodeValue(b, &args); err != nil {
		return nil, err
	}
	results := make([]R, len(args))
	statuses := make([]byte, len(args))
	var texts []string
	for i := range args {
		r, st, text := callItem(ctx, f.fn, args[i])
		results[i], statuses[i] = r, st
		if st != resultOK {
			texts = append(texts, text)
		}
	}
	return appendBatch(nil, statuses, texts, &results)
}

// callItem calls fn, turning an error or a panic into a status and text.
func callItem[A, R any](ctx context.Context, fn func(context.Context, A) (R, error), a A) (r R, status byte, text string) {
	defer func() {
		if p := recover(); p != nil {
			printPanic(p)
			status, text = resultPanic, fmt.Sprint(p)
		}
	}()
	r, err := fn(ctx, a)
	if err != nil {
		return r, resultErr, err.Error()
	}
	return r, resultOK, ""
}

// appendBatch encodes a batch result: the statuses, the error texts in
// order, then the results (zero where an item failed).
func appendBatch[R any](b []byte, statuses []byte, texts []string, results *[]R) ([]byte, error) {
	b = handle.AppendBytes(b, statuses)
	b = binary.AppendUvarint(b, uint64(len(texts)))
	for _, t := range texts {
		b = handle.AppendString(b, t)
	}
	return appendValue(b, results)
}

// parseBatch decodes a batch result into per-item results.
func parseBatch[R any](b []byte, n int) ([]R, []error, error) {
	rd := handle.NewReader(b)
	statuses := rd.Bytes()
	nt := rd.Uvarint()
	if rd.Err() != nil || len(statuses) != n || nt > uint64(n) {
		return nil, nil, newError("corrupt batch result")
	}
	texts := make([]string, nt)
	for i := range texts {
		texts[i] = rd.String()
	}
	if rd.Err() != nil {
		return nil, nil, newError("corrupt batch result")
	}
	var results []R
	if err := decodeValue(rd.Rest(), &results); err != nil {
		return nil, nil, err
	}
	if len(results) != n {
		return nil, nil, newError("corrupt batch result")
	}
	var errs []error
	ti := 0
	for i, st := range statuses {
		if st == resultOK {
			continue
		}
		if errs == nil {
			errs = make([]error, n)
		}
		if ti < len(texts) {
			errs[i] = &RemoteError{Text: texts[ti], Panic: st == resultPanic}
			ti++
		}
	}
	return results, errs, nil
}

// Runner is the Go form of subclassing Python's Process and overriding
// run(): a struct whose Run method is the child's body. Register its type
// once with RegisterRunner, start it with NewProcess. The struct travels to
// the child by its exported fields, as a Func argument does.
type Runner interface {
	Run(ctx context.Context) error
}

// RegisterRunner registers the concrete type of prototype (a struct or a
// pointer to one) under name, so that NewProcess can run values of that
// type in a child. Call it at package initialisation, like Register. It
// panics on an empty or duplicate name, a nil prototype, or a type
// registered twice.
func RegisterRunner(name string, prototype Runner) {
	if name == "" {
		panic("multiproc: RegisterRunner with an empty name")
	}
	if prototype == nil {
		panic(fmt.Sprintf("multiproc: RegisterRunner(%q) with a nil prototype", name))
	}
	checkInit("RegisterRunner", name)
	t := reflect.TypeOf(prototype)
	isPtr := t.Kind() == reflect.Pointer
	base := t
	if isPtr {
		base = t.Elem()
	}
	run := func(ctx context.Context, arg []byte, entries []handle.Entry, im *handle.Imports) ([]byte, error) {
		pv := reflect.New(base)
		if err := decodeRunner(arg, entries, im, pv); err != nil {
			return nil, err
		}
		r := pv.Interface()
		if !isPtr {
			r = pv.Elem().Interface()
		}
		if err := r.(Runner).Run(ctx); err != nil {
			return nil, userError{err}
		}
		return nil, nil
	}
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := runners[name]; dup {
		panic(fmt.Sprintf("multiproc: runner %q registered twice", name))
	}
	if old, dup := runnerName[t]; dup {
		panic(fmt.Sprintf("multiproc: runner type %v registered twice (as %q and %q)", t, old, name))
	}
	runners[name] = run
	runnerName[t] = name
}

// encodeRunner encodes the struct behind r (a value or a pointer).
func encodeRunner(r Runner, tab *handle.Table) ([]byte, []handle.Entry, error) {
	v := reflect.ValueOf(r)
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil, nil, errorf("nil %T runner", r)
		}
		v = v.Elem()
	}
	p := reflect.New(v.Type())
	p.Elem().Set(v)
	cp, entries, err := handle.Collect(p.Interface(), tab)
	if err != nil {
		return nil, nil, own(err)
	}
	b, err := wire.AppendAny(nil, cp)
	if err != nil {
		return nil, nil, own(err)
	}
	return b, entries, nil
}

func decodeRunner(b []byte, entries []handle.Entry, im *handle.Imports, pv reflect.Value) error {
	if err := wire.DecodeAny(b, pv.Interface()); err != nil {
		return own(err)
	}
	return own(handle.Restore(pv.Interface(), entries, im))
}

// RegisterType makes the concrete type of v known to the package's codec,
// so that values of it can travel inside interface-typed fields of
// arguments, results and messages (as gob.Register does for gob). Call it
// at package initialisation, like Register. Common built-in types (numbers,
// string, []byte, []any, map[string]any, time.Time, ...) are registered
// already. A type is known by its full import path, so config.Config of
// two packages are two types; it panics if another type is registered
// under the same name, which only two types declared inside functions of
// one package, under one name, can be.
func RegisterType(v any) {
	checkInit("RegisterType", fmt.Sprintf("%T", v))
	wire.Register(v)
}
