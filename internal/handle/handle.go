//go:build linux && (amd64 || arm64)

// Package handle moves shareable objects (shared memory, locks, queues,
// connections) from one process to another inside an ordinary Go value.
//
// The package that owns the shareable types says which they are, and how
// each is exported and imported, with SetHooks. Before a value is
// encoded, Collect finds every non-nil such pointer in it — the value
// itself, an exported field of it, or an element of a slice, array or map
// (with a string, integer or bool key), at any depth of plain structs,
// pointers to structs and those containers — and clears it in a copy that
// the caller encodes.
// Each distinct object goes once into a Table (its Desc, whose fds travel
// by SCM_RIGHTS), and an Entry records where it was. The Table owns
// duplicates of the objects' descriptors, so what was passed is what
// arrives even if the caller closes or drops an object before the message
// is sent; the Table's owner closes it once the message is delivered. The
// exporter makes the duplicates while it holds the object (Dup under its
// reference): a descriptor number taken out of an object and duplicated
// later could, if another goroutine closed the object meanwhile, name a
// file opened since.
//
// In the receiving process, an Imports imports each object of the table
// once, the first time an entry needs it, and Restore puts it at each
// recorded place of the decoded value: an object passed twice arrives as
// one object.
package handle

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Desc describes one shareable object for another process: its kind, a few
// bytes of metadata, and its file descriptors.
type Desc struct {
	Kind string
	Meta []byte
	Fds  []int
}

// hooks say which types are shareable and how they travel: set once, by
// the package that owns them, at initialisation.
var hooks struct {
	iface  reflect.Type                // an interface every shareable pointer type implements
	pkg    string                      // the package that declares them
	export func(obj any) (Desc, error) // the object's Desc, with duplicates of its fds that the caller owns
	imp    func(obj any, d Desc) error // makes obj, a fresh zero value, the object d describes; owns d.Fds
}

// SetHooks declares the shareable types — the pointer types that
// implement iface — and how one is exported (its Desc, whose fds are
// duplicates, made with Dup while the object could not be closed, that the
// caller owns from then on) and imported (into a fresh zero value, which
// then owns d.Fds and closes them if it fails).
func SetHooks(iface reflect.Type, export func(obj any) (Desc, error), imp func(obj any, d Desc) error) {
	hooks.iface, hooks.pkg, hooks.export, hooks.imp = iface, iface.PkgPath(), export, imp
	mayHoldCache.Clear()
}

// IsShareable reports whether t is a shareable pointer type: a pointer to
// a type declared in the hooks' package that implements their interface.
// A struct elsewhere that embeds a shareable pointer has its methods too,
// but is a plain struct whose field holds the object.
func IsShareable(t reflect.Type) bool {
	return hooks.iface != nil && t.Kind() == reflect.Pointer && t.Elem().PkgPath() == hooks.pkg && t.Implements(hooks.iface)
}

// Entry is one place where Collect found an object: the path from the
// root value to it (empty: the root itself) and the index of the object
// in the Table. Each step of the path is read against the type the
// receiver decodes into: a field index in a struct, an element index in
// a slice or array, and in a map the index in Keys of the key's text.
type Entry struct {
	Path  []int
	Keys  []string
	Index int
}

// Bounds of Collect's walk over the sender's own value (it never loops:
// depth is bounded, and so is the work).
const (
	maxDepth = 32
	maxVisit = 1 << 20 // elements of slices, arrays and maps looked at
	maxKey   = 1 << 12 // bytes of a map key's text
)

// keyText is a map key as an Entry carries it; ok is false for kinds of
// key that cannot be written as text.
func keyText(k reflect.Value) (string, bool) {
	switch k.Kind() {
	case reflect.String:
		return k.String(), len(k.String()) <= maxKey
	case reflect.Bool:
		return strconv.FormatBool(k.Bool()), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(k.Uint(), 10), true
	}
	return "", false
}

// parseKey is keyText reversed, into a key of type t.
func parseKey(s string, t reflect.Type) (reflect.Value, error) {
	k := reflect.New(t).Elem()
	var err error
	switch t.Kind() {
	case reflect.String:
		k.SetString(s)
	case reflect.Bool:
		var b bool
		b, err = strconv.ParseBool(s)
		k.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if i, err = strconv.ParseInt(s, 10, 64); err == nil && k.OverflowInt(i) {
			err = errors.New("out of range")
		}
		k.SetInt(i)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		var u uint64
		if u, err = strconv.ParseUint(s, 10, 64); err == nil && k.OverflowUint(u) {
			err = errors.New("out of range")
		}
		k.SetUint(u)
	default:
		err = errors.New("unsupported key type")
	}
	if err != nil {
		return reflect.Value{}, fmt.Errorf("a passed object's map key %q does not fit %s: %w", s, t, err)
	}
	return k, nil
}

// Table is the distinct shareable objects of one message, in order. On
// the sending side (Collect) it owns duplicates of their descriptors until
// Close.
type Table struct {
	Descs []Desc
	seen  map[uintptr]int // object address → index
	owned bool            // the fds are duplicates: Close closes them
}

// Len is the number of objects in the table.
func (t *Table) Len() int {
	if t == nil {
		return 0
	}
	return len(t.Descs)
}

// Fds lists every descriptor of the table in order, for sending.
func (t *Table) Fds() []int {
	if t == nil {
		return nil
	}
	var fds []int
	for _, d := range t.Descs {
		fds = append(fds, d.Fds...)
	}
	return fds
}

// NumFds is len(t.Fds()).
func (t *Table) NumFds() int {
	n := 0
	if t != nil {
		for _, d := range t.Descs {
			n += len(d.Fds)
		}
	}
	return n
}

// Close closes the descriptors the table owns. It is idempotent.
func (t *Table) Close() {
	if t == nil || !t.owned {
		return
	}
	t.owned = false
	for _, d := range t.Descs {
		closeFds(d.Fds)
	}
}

// add records the object behind x (a non-nil shareable pointer) and returns
// its index; the export (the first time) duplicates the descriptors, which
// the table owns from then on.
func (t *Table) add(x reflect.Value) (int, error) {
	key := x.Pointer()
	if i, ok := t.seen[key]; ok {
		return i, nil
	}
	d, err := hooks.export(x.Interface())
	if err != nil {
		return 0, err
	}
	if t.seen == nil {
		t.seen = map[uintptr]int{}
		t.owned = true
	}
	t.Descs = append(t.Descs, d)
	t.seen[key] = len(t.Descs) - 1
	return len(t.Descs) - 1, nil
}

// Dup duplicates fd (close-on-exec), for an export: the caller must hold
// the object fd belongs to, so that fd cannot be closed (and its number
// reused) meanwhile.
func Dup(fd int) (int, error) {
	return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
}

var mayHoldCache sync.Map // reflect.Type → bool

// MayHold reports whether a value of type t can hold a shareable object,
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
		if IsShareable(t) {
			return true
		}
		switch t.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Array:
			return walk(t.Elem())
		case reflect.Map:
			return walk(t.Key()) || walk(t.Elem())
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
// which every shareable pointer is nil, and the entries that say where
// they were; the objects go into tab (each distinct object once). Structs
// reached through pointers, and slices and maps that hold objects, are
// copied too, so v itself is never changed. An object in a map's key, or
// in a map whose key is not a string, integer or bool, is refused with an
// error that names where it is; so is a value too large to search.
func Collect(v any, tab *Table) (copyPtr any, entries []Entry, err error) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return nil, nil, errors.New("handle.Collect needs a non-nil pointer")
	}
	cp := reflect.New(rv.Elem().Type())
	cp.Elem().Set(rv.Elem())
	var path []int
	var keys []string
	var names []string
	visited := 0
	where := func() string {
		if len(names) > 0 {
			return "field " + strings.Join(names, ".")
		}
		return "the argument"
	}
	var walk func(x reflect.Value, depth int) error
	// elem walks one element of a container at path step i.
	elem := func(x reflect.Value, i, depth int) error {
		if visited++; visited > maxVisit {
			return fmt.Errorf("%s holds more than %d elements to search for shared objects", where(), maxVisit)
		}
		path = append(path, i)
		err := walk(x, depth+1)
		path = path[:len(path)-1]
		return err
	}
	walk = func(x reflect.Value, depth int) error {
		if depth > maxDepth {
			return nil
		}
		t := x.Type()
		if IsShareable(t) {
			if x.IsNil() {
				return nil
			}
			i, err := tab.add(x)
			if err != nil {
				return err
			}
			entries = append(entries, Entry{Path: append([]int(nil), path...), Keys: append([]string(nil), keys...), Index: i})
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
				f := t.Field(i)
				if !f.IsExported() {
					continue
				}
				path, names = append(path, i), append(names, f.Name)
				err := walk(x.Field(i), depth+1)
				path, names = path[:len(path)-1], names[:len(names)-1]
				if err != nil {
					return err
				}
			}
		case reflect.Array:
			if !MayHold(t.Elem()) {
				return nil
			}
			for i := 0; i < x.Len(); i++ {
				if err := elem(x.Index(i), i, depth); err != nil {
					return err
				}
			}
		case reflect.Slice:
			if x.IsNil() || !MayHold(t.Elem()) {
				return nil
			}
			n := reflect.MakeSlice(t, x.Len(), x.Len())
			reflect.Copy(n, x)
			x.Set(n)
			for i := 0; i < n.Len(); i++ {
				if err := elem(n.Index(i), i, depth); err != nil {
					return err
				}
			}
		case reflect.Map:
			if MayHold(t.Key()) {
				return fmt.Errorf("%s is a %s: shared objects (*Value, *Queue, *Conn, ...) cannot be map keys", where(), t)
			}
			if x.IsNil() || !MayHold(t.Elem()) {
				return nil
			}
			n := reflect.MakeMapWithSize(t, x.Len())
			it := x.MapRange()
			for it.Next() {
				k := it.Key()
				text, ok := keyText(k)
				if !ok {
					return fmt.Errorf("%s is a %s: shared objects travel in maps whose keys are strings, integers or bools (of at most %d bytes)", where(), t, maxKey)
				}
				e := reflect.New(t.Elem()).Elem()
				e.Set(it.Value())
				keys = append(keys, text)
				err := elem(e, len(keys)-1, depth)
				keys = keys[:len(keys)-1]
				if err != nil {
					return err
				}
				n.SetMapIndex(k, e)
			}
			x.Set(n)
		}
		return nil
	}
	if err := walk(cp.Elem(), 0); err != nil {
		return nil, nil, err
	}
	return cp.Interface(), entries, nil
}

// Imports imports the objects of a received table, each once, on demand.
// Close closes the descriptors of the objects nobody imported.
type Imports struct {
	descs []Desc
	objs  []reflect.Value // imported objects (pointers), by index
	done  []bool          // imported, or its fds closed by a failure
}

// NewImports takes ownership of the table's descriptors.
func NewImports(descs []Desc) *Imports {
	return &Imports{descs: descs, objs: make([]reflect.Value, len(descs)), done: make([]bool, len(descs))}
}

// object returns object i imported as type t (a pointer type).
func (im *Imports) object(i int, t reflect.Type) (reflect.Value, error) {
	if im == nil || i < 0 || i >= len(im.descs) {
		return reflect.Value{}, errors.New("a handle names an object the message does not carry")
	}
	d := im.descs[i]
	if o := im.objs[i]; o.IsValid() {
		if o.Type() != t {
			return reflect.Value{}, fmt.Errorf("a passed %s lands in a field of type %s", d.Kind, t)
		}
		return o, nil
	}
	if im.done[i] {
		return reflect.Value{}, fmt.Errorf("a passed %s could not be received", d.Kind)
	}
	im.done[i] = true
	obj := reflect.New(t.Elem())
	if err := hooks.imp(obj.Interface(), d); err != nil {
		return reflect.Value{}, err
	}
	im.objs[i] = obj
	return obj, nil
}

// Close closes the descriptors of objects never imported.
func (im *Imports) Close() {
	if im == nil {
		return
	}
	for i, d := range im.descs {
		if !im.done[i] {
			im.done[i] = true
			closeFds(d.Fds)
		}
	}
}

// Restore imports each entry's object and stores it at its path in the
// value v points to.
func Restore(v any, entries []Entry, im *Imports) error {
	rv := reflect.ValueOf(v)
	for _, e := range entries {
		if err := restoreOne(rv.Elem(), e, im); err != nil {
			return err
		}
	}
	return nil
}

func restoreOne(x reflect.Value, e Entry, im *Imports) error {
	return restoreAt(x, e.Path, e.Keys, func(t reflect.Type) (reflect.Value, error) { return im.object(e.Index, t) })
}

var errMisfit = errors.New("a passed object does not fit the receiving type")

// restoreAt stores the object obj gives at path in x (settable); a map's
// element is stored back after the object is put in it.
func restoreAt(x reflect.Value, path []int, keys []string, obj func(reflect.Type) (reflect.Value, error)) error {
	if len(path) == 0 {
		t := x.Type()
		if !IsShareable(t) {
			return fmt.Errorf("a passed object lands in a field of type %s", t)
		}
		o, err := obj(t)
		if err != nil {
			return err
		}
		x.Set(o)
		return nil
	}
	if x.Kind() == reflect.Pointer && !IsShareable(x.Type()) {
		if x.IsNil() {
			x.Set(reflect.New(x.Type().Elem()))
		}
		x = x.Elem()
	}
	i, rest := path[0], path[1:]
	switch x.Kind() {
	case reflect.Struct:
		if i >= x.NumField() {
			return errMisfit
		}
		return restoreAt(x.Field(i), rest, keys, obj)
	case reflect.Slice, reflect.Array:
		if i >= x.Len() {
			return errMisfit
		}
		return restoreAt(x.Index(i), rest, keys, obj)
	case reflect.Map:
		if i >= len(keys) {
			return errMisfit
		}
		t := x.Type()
		k, err := parseKey(keys[i], t.Key())
		if err != nil {
			return err
		}
		if x.IsNil() {
			x.Set(reflect.MakeMap(t))
		}
		e := reflect.New(t.Elem()).Elem()
		if v := x.MapIndex(k); v.IsValid() {
			e.Set(v)
		}
		if err := restoreAt(e, rest, keys, obj); err != nil {
			return err
		}
		x.SetMapIndex(k, e)
		return nil
	}
	return errMisfit
}

// AppendTable encodes the table without its fds (which travel beside the
// message, in the order Fds lists them).
func AppendTable(b []byte, t *Table) []byte {
	b = binary.AppendUvarint(b, uint64(t.Len()))
	if t == nil {
		return b
	}
	for _, d := range t.Descs {
		b = appendBytes(b, []byte(d.Kind))
		b = appendBytes(b, d.Meta)
		b = binary.AppendUvarint(b, uint64(len(d.Fds)))
	}
	return b
}

// Table decodes what AppendTable wrote, handing out fds in order from the
// front of fds, and returns how many it took. On error (in Err) it closes
// nothing: the caller owns fds.
func (d *Reader) Table(fds []int) (descs []Desc, used int) {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var ds Desc
		ds.Kind = string(d.bytes())
		ds.Meta = d.bytes()
		nf := d.uvarint()
		if d.err == nil && nf > uint64(len(fds)-used) {
			d.err = errors.New("a handle table names more descriptors than arrived")
		}
		if d.err != nil {
			break
		}
		ds.Fds = fds[used : used+int(nf) : used+int(nf)]
		used += int(nf)
		descs = append(descs, ds)
	}
	if d.err != nil {
		return nil, 0
	}
	return descs, used
}

// AppendEntries encodes the entries of one item.
func AppendEntries(b []byte, entries []Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for _, e := range entries {
		b = binary.AppendUvarint(b, uint64(len(e.Path)))
		for _, p := range e.Path {
			b = binary.AppendUvarint(b, uint64(p))
		}
		b = binary.AppendUvarint(b, uint64(len(e.Keys)))
		for _, k := range e.Keys {
			b = appendBytes(b, []byte(k))
		}
		b = binary.AppendUvarint(b, uint64(e.Index))
	}
	return b
}

// Entries decodes what AppendEntries wrote; indexes are checked against
// a table of n objects.
func (d *Reader) Entries(n int) []Entry {
	count := d.uvarint()
	if count > uint64(len(d.b)) {
		d.fail()
	}
	var entries []Entry
	for i := uint64(0); i < count && d.err == nil; i++ {
		var e Entry
		np := d.uvarint()
		if np > uint64(len(d.b)) || np > 64 {
			d.fail()
		}
		for j := uint64(0); j < np && d.err == nil; j++ {
			p := d.uvarint()
			if p > maxVisit {
				d.fail()
			}
			e.Path = append(e.Path, int(p))
		}
		nk := d.uvarint()
		if nk > np {
			d.fail()
		}
		for j := uint64(0); j < nk && d.err == nil; j++ {
			k := d.bytes()
			if len(k) > maxKey {
				d.fail()
			}
			e.Keys = append(e.Keys, string(k))
		}
		idx := d.uvarint()
		if idx >= uint64(n) {
			d.fail()
		}
		e.Index = int(idx)
		entries = append(entries, e)
	}
	if d.err != nil {
		return nil
	}
	return entries
}

// CloseDescs closes the descriptors of received objects that will not be
// imported.
func CloseDescs(descs []Desc) {
	for _, d := range descs {
		closeFds(d.Fds)
	}
}

func closeFds(fds []int) {
	for _, fd := range fds {
		closeFd(fd)
	}
}
