//go:build linux && (amd64 || arm64)

package wire

import (
	"fmt"
	"reflect"
	"sync"
	"time"
)

// The registry of concrete types that may travel inside interface values,
// by name, as encoding/gob's. Both ends of a message are the same binary,
// so the same registrations run in both.
var registry struct {
	sync.RWMutex
	byName map[string]reflect.Type
	byType map[reflect.Type]string
}

// builtins registers the common built-in types, on first use rather than
// at init: every child process runs the package inits, most never need it.
var builtins = sync.OnceFunc(func() {
	for _, v := range []any{
		false, 0, int8(0), int16(0), int32(0), int64(0), uint(0), uint8(0), uint16(0), uint32(0), uint64(0), uintptr(0),
		float32(0), float64(0), complex64(0), complex128(0), "", []byte(nil),
		[]any(nil), map[string]any(nil), []string(nil), []int(nil), []int64(nil), []float64(nil),
		map[string]string(nil), map[string]int(nil), map[string]float64(nil), time.Time{}, time.Duration(0),
	} {
		register(TypeName(reflect.TypeOf(v)), v)
	}
})

// Register makes the concrete type of v known by its TypeName (the full
// import path, so config.Config of two packages are two types), so that
// values of it can travel inside interface-typed fields (as gob.Register).
// Registering the same type twice is fine; two types under one name panic.
func Register(v any) {
	if v == nil {
		panic("multiproc: Register of a nil value")
	}
	RegisterName(TypeName(reflect.TypeOf(v)), v)
}

// RegisterName is Register under a name of the caller's choice.
func RegisterName(name string, v any) {
	builtins()
	register(name, v)
}

func register(name string, v any) {
	t := reflect.TypeOf(v)
	registry.Lock()
	defer registry.Unlock()
	if registry.byName == nil {
		registry.byName = map[string]reflect.Type{}
		registry.byType = map[reflect.Type]string{}
	}
	if old, ok := registry.byName[name]; ok && old != t {
		panic(fmt.Sprintf("multiproc: types %v and %v registered under one name %q", old, t, name))
	}
	registry.byName[name] = t
	if _, ok := registry.byType[t]; !ok {
		registry.byType[t] = name
	}
}

func registeredName(t reflect.Type) (string, bool) {
	builtins()
	registry.RLock()
	defer registry.RUnlock()
	n, ok := registry.byType[t]
	return n, ok
}

func registeredType(name string) (reflect.Type, bool) {
	builtins()
	registry.RLock()
	defer registry.RUnlock()
	t, ok := registry.byName[name]
	return t, ok
}
