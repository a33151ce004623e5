//go:build linux && (amd64 || arm64)

package wire

import (
	"reflect"
	"strconv"
	"strings"
	"sync"
)

var typeNames sync.Map // reflect.Type → string

// TypeName names t for messages that must say which type they carry: as
// reflect.Type.String, but every named type is qualified by its full
// import path ("example.com/v2/config.Config", not "config.Config"), so
// types of two packages with the same name never share a name. Composite
// types are spelled out the same way ("[]example.com/a.T",
// "map[string]*example.com/b.T"); predeclared types keep their names.
// Two types declared inside functions of one package under one name are
// the one case it cannot tell apart (reflect does not).
func TypeName(t reflect.Type) string {
	if n, ok := typeNames.Load(t); ok {
		return n.(string)
	}
	var b strings.Builder
	writeTypeName(&b, t)
	n := b.String()
	typeNames.Store(t, n)
	return n
}

// writeTypeName renders t. Unnamed types cannot be recursive without a
// named type in between, where the recursion stops.
func writeTypeName(b *strings.Builder, t reflect.Type) {
	if name := t.Name(); name != "" {
		// A generic instantiation's name already spells its type arguments
		// with their full import paths.
		if p := t.PkgPath(); p != "" {
			b.WriteString(p)
			b.WriteByte('.')
		}
		b.WriteString(name)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		b.WriteByte('*')
		writeTypeName(b, t.Elem())
	case reflect.Slice:
		b.WriteString("[]")
		writeTypeName(b, t.Elem())
	case reflect.Array:
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(t.Len()))
		b.WriteByte(']')
		writeTypeName(b, t.Elem())
	case reflect.Map:
		b.WriteString("map[")
		writeTypeName(b, t.Key())
		b.WriteByte(']')
		writeTypeName(b, t.Elem())
	case reflect.Chan:
		switch t.ChanDir() {
		case reflect.RecvDir:
			b.WriteString("<-chan ")
		case reflect.SendDir:
			b.WriteString("chan<- ")
		default:
			b.WriteString("chan ")
		}
		writeTypeName(b, t.Elem())
	case reflect.Func:
		b.WriteString("func")
		writeSignature(b, t)
	case reflect.Struct:
		if t.NumField() == 0 {
			b.WriteString("struct {}")
			return
		}
		b.WriteString("struct { ")
		for i := range t.NumField() {
			if i > 0 {
				b.WriteString("; ")
			}
			f := t.Field(i)
			if !f.Anonymous {
				writeMemberName(b, f.Name, f.PkgPath)
				b.WriteByte(' ')
			}
			writeTypeName(b, f.Type)
			if f.Tag != "" {
				b.WriteByte(' ')
				b.WriteString(strconv.Quote(string(f.Tag)))
			}
		}
		b.WriteString(" }")
	case reflect.Interface:
		if t.NumMethod() == 0 {
			b.WriteString("interface {}")
			return
		}
		b.WriteString("interface { ")
		for i := range t.NumMethod() {
			if i > 0 {
				b.WriteString("; ")
			}
			m := t.Method(i)
			writeMemberName(b, m.Name, m.PkgPath)
			writeSignature(b, m.Type)
		}
		b.WriteString(" }")
	default:
		b.WriteString(t.String())
	}
}

// writeMemberName writes a field or method name, an unexported one
// qualified by its package (two packages' unexported names differ).
func writeMemberName(b *strings.Builder, name, pkgPath string) {
	if pkgPath != "" {
		b.WriteString(pkgPath)
		b.WriteByte('.')
	}
	b.WriteString(name)
}

// writeSignature writes a function type's parameters and results.
func writeSignature(b *strings.Builder, t reflect.Type) {
	b.WriteByte('(')
	for i := range t.NumIn() {
		if i > 0 {
			b.WriteString(", ")
		}
		if t.IsVariadic() && i == t.NumIn()-1 {
			b.WriteString("...")
			writeTypeName(b, t.In(i).Elem())
		} else {
			writeTypeName(b, t.In(i))
		}
	}
	b.WriteByte(')')
	switch t.NumOut() {
	case 0:
	case 1:
		b.WriteByte(' ')
		writeTypeName(b, t.Out(0))
	default:
		b.WriteString(" (")
		for i := range t.NumOut() {
			if i > 0 {
				b.WriteString(", ")
			}
			writeTypeName(b, t.Out(i))
		}
		b.WriteByte(')')
	}
}
