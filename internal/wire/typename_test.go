//go:build linux && (amd64 || arm64)

package wire

import (
	"reflect"
	"strings"
	"testing"

	aconfig "github.com/multiproc-go/multiproc/internal/wire/testtypes/a/config"
	bconfig "github.com/multiproc-go/multiproc/internal/wire/testtypes/b/config"
)

type generic[T any] struct{ V T }

func TestTypeName(t *testing.T) {
	const a = "github.com/multiproc-go/multiproc/internal/wire/testtypes/a/config.Config"
	const b = "github.com/multiproc-go/multiproc/internal/wire/testtypes/b/config.Config"
	for _, c := range []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[aconfig.Config](), a},
		{reflect.TypeFor[bconfig.Config](), b},
		{reflect.TypeFor[*aconfig.Config](), "*" + a},
		{reflect.TypeFor[[]bconfig.Config](), "[]" + b},
		{reflect.TypeFor[[3]aconfig.Config](), "[3]" + a},
		{reflect.TypeFor[map[bconfig.Config][]*aconfig.Config](), "map[" + b + "][]*" + a},
		{reflect.TypeFor[generic[aconfig.Config]](), "github.com/multiproc-go/multiproc/internal/wire.generic[" + a + "]"},
		{reflect.TypeFor[struct {
			C    bconfig.Config `k:"v"`
			priv int
		}](), `struct { C ` + b + ` "k:\"v\""; github.com/multiproc-go/multiproc/internal/wire.priv int }`},
		{reflect.TypeFor[func(int, ...aconfig.Config) (string, error)](), "func(int, ..." + a + ") (string, error)"},
		{reflect.TypeFor[<-chan aconfig.Config](), "<-chan " + a},
		{reflect.TypeFor[interface{ M(bconfig.Config) }](), "interface { M(" + b + ") }"},
		{reflect.TypeFor[any](), "interface {}"},
		{reflect.TypeFor[struct{}](), "struct {}"},
		{reflect.TypeFor[int](), "int"},
		{reflect.TypeFor[error](), "error"},
		{reflect.TypeFor[[]byte](), "[]uint8"},
	} {
		if got := TypeName(c.t); got != c.want {
			t.Errorf("TypeName(%v) = %q, want %q", c.t, got, c.want)
		}
	}
}

// TestRegisterSameNamedTypes: two packages named config, each with a
// Config, register side by side and travel in interface values as
// themselves (by reflect.Type.String both were "config.Config": the
// second registration panicked).
func TestRegisterSameNamedTypes(t *testing.T) {
	Register(aconfig.Config{})
	Register(bconfig.Config{})
	in := []any{aconfig.Config{Name: "a", N: 1}, bconfig.Config{Host: "b", Port: 2}}
	out := roundTripValue(t, in)
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("got %#v, want %#v", out, in)
	}
	// A name registered for one of them refuses the other.
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "registered under one name") {
			t.Fatalf("two types under one name: recover() = %v", r)
		}
	}()
	RegisterName(TypeName(reflect.TypeFor[aconfig.Config]()), bconfig.Config{})
}
