// Package handle moves shareable objects (shared memory, locks, queues,
// connections) from one process to another inside an ordinary Go value.
//
// A shareable type implements Exporter on its pointer. Before a value is
// encoded, Collect finds every non-nil such pointer in it — the value
// itself, or an exported field of it, at any depth of plain structs and
// pointers to structs — records where it was and what it is (a Desc, whose
// fds travel by SCM_RIGHTS), and clears it in a copy that the caller
// encodes. In the receiving process, Restore puts a freshly imported object
// back at each recorded place of the decoded value.
package handle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
)

// Desc describes one shareable object for another process: its kind, a few
// bytes of metadata, and its file descriptors (valid in the sending process
// until sent; in the receiver, owned by the importer).
type Desc struct {
	Kind string
	Meta []byte
	Fds  []int
}

// Exporter is implemented (on the pointer) by every shareable type.
type Exporter interface {
	ExportHandle() (Desc, error)
}

// Importer is implemented on the pointer of every shareable type: it turns
// the receiver, a fresh zero value, into a working handle from d. It owns
// d.Fds from then on, and closes them if it fails.
type Importer interface {
	ImportHandle(d Desc) error
}

var exporterType = reflect.TypeFor[Exporter]()

// Entry is one object found by Collect: the field-index path from the root
// value to it (empty: the root itself) and its description.
type Entry struct {
	Path []int
	Desc Desc
}

var mayHoldCache sync.Map // reflect.Type → bool

// MayHold reports whether a value of type t can hold a shareable object
// where Collect looks for one. Values of other types skip Collect.
func MayHold(t reflect.Type) bool {
	if v, ok := mayHoldCache.Load(t); ok {
		return v.(bool)
	}
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type) bool
	walk = func(t reflect.Type) bool {
		if seen[t] {
			return false
		}
		seen[t] = true
		if t.Kind() == reflect.Pointer && t.Implements(exporterType) {
			return true
		}
		switch t.Kind() {
		case reflect.Pointer:
			return t.Elem().Kind() == reflect.Struct && walk(t.Elem())
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				if f := t.Field(i); f.IsExported() && walk(f.Type) {
					return true
				}
			}
		}
		return false
	}
	r := walk(t)
	mayHoldCache.Store(t, r)
	return r
}

// Collect returns a shallow copy of v (a pointer to the root value) in
// which every shareable pointer is nil, and the entries that say what
// they were. Structs reached through pointers are copied too, so v itself
// is never changed.
func Collect(v any) (copyPtr any, entries []Entry, err error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, nil, errors.New("multiproc: handle.Collect needs a non-nil pointer")
	}
	cp := reflect.New(rv.Elem().Type())
	cp.Elem().Set(rv.Elem())
	var path []int
	var walk func(x reflect.Value, depth int) error
	walk = func(x reflect.Value, depth int) error {
		if depth > 32 {
			return nil
		}
		t := x.Type()
		if t.Kind() == reflect.Pointer && t.Implements(exporterType) {
			if x.IsNil() {
				return nil
			}
			d, err := x.Interface().(Exporter).ExportHandle()
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Path: append([]int(nil), path...), Desc: d})
			x.SetZero()
			return nil
		}
		switch t.Kind() {
		case reflect.Pointer:
			if x.IsNil() || t.Elem().Kind() != reflect.Struct {
				return nil
			}
			n := reflect.New(t.Elem())
			n.Elem().Set(x.Elem())
			x.Set(n)
			return walk(n.Elem(), depth+1)
		case reflect.Struct:
			for i := 0; i < t.NumField(); i++ {
				if !t.Field(i).IsExported() {
					continue
				}
				path = append(path, i)
				err := walk(x.Field(i), depth+1)
				path = path[:len(path)-1]
				if err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(cp.Elem(), 0); err != nil {
		return nil, nil, err
	}
	return cp.Interface(), entries, nil
}

// Restore imports each entry's object and stores it at its path in the
// value v points to. On error it closes the fds of the entries it did not
// reach.
func Restore(v any, entries []Entry) error {
	rv := reflect.ValueOf(v)
	for i, e := range entries {
		if err := restoreOne(rv.Elem(), e); err != nil {
			for _, rest := range entries[i+1:] {
				closeFds(rest.Desc.Fds)
			}
			return err
		}
	}
	return nil
}

func restoreOne(x reflect.Value, e Entry) error {
	for _, i := range e.Path {
		if x.Kind() == reflect.Pointer {
			if x.IsNil() {
				x.Set(reflect.New(x.Type().Elem()))
			}
			x = x.Elem()
		}
		if x.Kind() != reflect.Struct || i >= x.NumField() {
			closeFds(e.Desc.Fds)
			return fmt.Errorf("multiproc: a passed %s does not fit the receiving type", e.Desc.Kind)
		}
		x = x.Field(i)
	}
	t := x.Type()
	if t.Kind() != reflect.Pointer || !t.Implements(exporterType) {
		closeFds(e.Desc.Fds)
		return fmt.Errorf("multiproc: a passed %s lands in a field of type %s", e.Desc.Kind, t)
	}
	obj := reflect.New(t.Elem())
	imp, ok := obj.Interface().(Importer)
	if !ok {
		closeFds(e.Desc.Fds)
		return fmt.Errorf("multiproc: %s cannot be received", t)
	}
	if err := imp.ImportHandle(e.Desc); err != nil {
		return err
	}
	x.Set(obj)
	return nil
}

// CloseFds closes the descriptors of entries that will not be imported.
func CloseFds(entries []Entry) {
	for _, e := range entries {
		closeFds(e.Desc.Fds)
	}
}

// AllFds lists the entries' descriptors in order, for sending.
func AllFds(entries []Entry) []int {
	var fds []int
	for _, e := range entries {
		fds = append(fds, e.Desc.Fds...)
	}
	return fds
}

// AppendEntries encodes the entries without their fds (which travel beside
// the message, in the same order as AllFds lists them).
func AppendEntries(b []byte, entries []Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Path)))
		for _, p := range e.Path {
			b = binary.AppendUvarint(b, uint64(p))
		}
		b = appendBytes(b, []byte(e.Desc.Kind))
		b = appendBytes(b, e.Desc.Meta)
		b = binary.AppendUvarint(b, uint64(len(e.Desc.Fds)))
	}
	return b
}

// ParseEntriesPrefix decodes what AppendEntries wrote, handing out fds in
// order from the front of fds; it returns the rest of b and how many fds
// the entries took. On error it closes nothing: the caller owns fds.
func ParseEntriesPrefix(b []byte, fds []int) (entries []Entry, rest []byte, used int, err error) {
	d := Reader{b: b}
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err = errShort
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var e Entry
		np := d.uvarint()
		if np > uint64(len(d.b)) {
			d.err = errShort
		}
		for j := uint64(0); j < np && d.err == nil; j++ {
			e.Path = append(e.Path, int(d.uvarint()))
		}
		e.Desc.Kind = string(d.bytes())
		e.Desc.Meta = d.bytes()
		nf := int(d.uvarint())
		if d.err == nil && (nf < 0 || used+nf > len(fds)) {
			d.err = errors.New("multiproc: a handle table names more descriptors than arrived")
		}
		if d.err != nil {
			break
		}
		e.Desc.Fds = fds[used : used+nf : used+nf]
		used += nf
		entries = append(entries, e)
	}
	if d.err != nil {
		return nil, nil, 0, d.err
	}
	return entries, d.b, used, nil
}

func closeFds(fds []int) {
	for _, fd := range fds {
		closeFd(fd)
	}
}
