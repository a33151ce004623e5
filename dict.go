//go:build linux && (amd64 || arm64)

package multiproc

import (
	"errors"
	"iter"
	"reflect"
	"runtime"

	"github.com/multiproc-go/multiproc/internal/handle"
	"github.com/multiproc-go/multiproc/internal/shmmap"
	"github.com/multiproc-go/multiproc/internal/wire"
)

// Dict is a map in shared memory, Python's Manager().dict() without the
// manager process: every process that holds it reads and writes the same
// entries directly, under one cross-process lock, in well under a
// microsecond. Update is an atomic read-modify-write across processes — the
// `d[k] += 1` that Python's manager dict loses unless a separate lock
// guards it.
//
// Keys and values travel through the package's codec (as Queue messages
// do): any type the codec takes, with no shared objects in it. Two keys
// are the same entry when their encodings are equal, which for the usual
// key types (numbers, strings, arrays and structs of them) is Go's ==,
// except that float keys +0 and -0 are two entries and a NaN key can be
// found again. (The padding bytes of a struct key never count: a key with
// padding is copied field by field before it is encoded.)
//
// A Dict grows without bound but memory; every process maps the new size
// as it grows. A process killed at any point of a Store, Delete, Update or
// growth (SIGKILL included) leaves the Dict consistent: each entry has its
// old or its new value, never a torn one, and no other entry is lost; the
// next process to take the lock notices the dead holder within about 100
// ms and goes on (internal/shmmap's doc has the argument).
//
// A *Dict reaches a child or a pool task as a Func argument (or an
// exported field of one or of a Runner) and is there the same Dict. It
// cannot be sent through a Conn or Queue. Close releases this process's
// hold; the memory is freed when the last process holding it closes it,
// drops it (the garbage collector closes it then) or exits. After Close
// and on a zero Dict, the methods with an error result return one matching
// ErrClosed (ErrNotInitialized), and Len panics with it; All yields
// nothing.
type Dict[K comparable, V any] struct {
	noCopy noCopy
	m      *shmmap.Map
	kc     *wire.Codec[K]
	vc     *wire.Codec[V]
	canon  func(*K) *K // nil unless K's memory has padding (keyCanon)
}

var kDict = newKind("Dict", "NewDict")

// NewDict makes an empty shared Dict. It fails if K or V cannot be
// encoded (a func, a channel, a shared object...).
func NewDict[K comparable, V any]() (*Dict[K, V], error) {
	if err := checkCreate("NewDict"); err != nil {
		return nil, err
	}
	m, err := shmmap.Create()
	if err != nil {
		return nil, errorf("NewDict: %w", err)
	}
	d := &Dict[K, V]{}
	if err := d.init(m); err != nil {
		m.Close()
		return nil, err
	}
	return d, nil
}

func (d *Dict[K, V]) init(m *shmmap.Map) error {
	kc, err := wire.NewCodec[K]()
	if err != nil {
		return errorf("Dict key: %w", err)
	}
	vc, err := wire.NewCodec[V]()
	if err != nil {
		return errorf("Dict value: %w", err)
	}
	d.m, d.kc, d.vc, d.canon = m, kc, vc, keyCanon[K]()
	runtime.AddCleanup(d, func(m *shmmap.Map) { m.Close() }, m)
	return nil
}

// dictErr turns an error of the table into the package's.
func dictErr(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, shmmap.ErrClosed):
		return kDict.closed
	case errors.Is(err, shmmap.ErrCorrupt):
		return errorf("Dict.%s: %w (%v)", op, ErrCorrupt, err)
	case errors.Is(err, shmmap.ErrTooLarge):
		return errorf("Dict.%s: %w (%v)", op, ErrTooLarge, err)
	}
	return errorf("Dict.%s: %w", op, err)
}

func (d *Dict[K, V]) key(op string, k *K) ([]byte, error) {
	if d.m == nil {
		return nil, kDict.zero
	}
	if d.canon != nil {
		k = d.canon(k)
	}
	b, err := d.kc.Append(nil, k)
	if err != nil {
		return nil, errorf("Dict.%s: key: %w", op, err)
	}
	return b, nil
}

// Load returns the value stored for k and whether there was one.
func (d *Dict[K, V]) Load(k K) (V, bool, error) {
	var v V
	kb, err := d.key("Load", &k)
	if err != nil {
		return v, false, err
	}
	vb, ok, err := d.m.Load(nil, kb)
	if err != nil || !ok {
		return v, false, dictErr("Load", err)
	}
	if err := d.vc.Decode(vb, &v); err != nil {
		return v, false, errorf("Dict.Load: %w", err)
	}
	return v, true, nil
}

// Store sets the value for k.
func (d *Dict[K, V]) Store(k K, v V) error {
	kb, err := d.key("Store", &k)
	if err != nil {
		return err
	}
	vb, err := d.vc.Append(nil, &v)
	if err != nil {
		return errorf("Dict.Store: value: %w", err)
	}
	return dictErr("Store", d.m.Store(kb, vb))
}

// Delete removes k. A missing key is not an error (Go's delete).
func (d *Dict[K, V]) Delete(k K) error {
	kb, err := d.key("Delete", &k)
	if err != nil {
		return err
	}
	return dictErr("Delete", d.m.Delete(kb))
}

// Update sets k to fn(old, ok) — old the current value, ok whether there
// was one — atomically across every process: no Store, Delete or Update
// of any process comes between the read and the write. It returns the
// value stored. fn runs with the Dict's lock held, so it must be short
// and must not use the Dict (that deadlocks). If fn panics, the entry is
// unchanged, the lock is released and the panic goes on; if this process
// dies during fn, the entry is unchanged too.
func (d *Dict[K, V]) Update(k K, fn func(old V, ok bool) V) (V, error) {
	var nv V
	kb, err := d.key("Update", &k)
	if err != nil {
		return nv, err
	}
	err = d.m.Update(kb, func(ob []byte, ok bool) ([]byte, error) {
		var old V
		if ok {
			if err := d.vc.Decode(ob, &old); err != nil {
				return nil, err
			}
		}
		nv = fn(old, ok)
		return d.vc.Append(nil, &nv)
	})
	if err != nil {
		var zero V
		return zero, dictErr("Update", err)
	}
	return nv, nil
}

// Len returns the number of entries (0 if the shared memory is corrupt).
// It panics on a closed or zero Dict.
func (d *Dict[K, V]) Len() int {
	if d.m == nil {
		panic(kDict.zero)
	}
	n, err := d.m.Len()
	if errors.Is(err, shmmap.ErrClosed) {
		panic(kDict.closed)
	}
	return n
}

// All yields every entry, each one whole (its key and a value it held),
// for use in a range loop; the loop body may use the Dict. It is not a
// snapshot of the whole Dict: entries stored or deleted meanwhile, by
// this process or others, may or may not be seen, but an entry present
// throughout is yielded exactly once. It stops early if the Dict is
// closed or its memory is corrupt.
func (d *Dict[K, V]) All() iter.Seq2[K, V] {
	return func(yield func(K, V) bool) {
		if d.m == nil {
			return
		}
		type kv struct{ k, v []byte }
		var (
			batch   []kv
			yielded = map[string]struct{}{} // encoded keys, to skip after a restart
			pos     int
			gen0    uint64
			first   = true
			limit   = 64
		)
		for pos >= 0 {
			batch = batch[:0]
			next, gen, err := d.m.Range(pos, limit, func(k, v []byte) {
				batch = append(batch, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
			})
			if err != nil {
				return
			}
			if first {
				gen0, first = gen, false
			} else if gen != gen0 {
				// The entries moved (a growth or compaction): slot
				// positions from before mean nothing. Start over,
				// skipping what was yielded, in one batch so that
				// this ends however busy the writers are.
				gen0, pos, limit = gen, 0, 1<<62
				continue
			}
			for _, e := range batch {
				if _, ok := yielded[string(e.k)]; ok {
					continue
				}
				yielded[string(e.k)] = struct{}{}
				var k K
				var v V
				if d.kc.Decode(e.k, &k) != nil || d.vc.Decode(e.v, &v) != nil {
					return
				}
				if !yield(k, v) {
					return
				}
			}
			pos = next
		}
	}
}

// Close releases this process's mapping of the Dict; other processes keep
// theirs, and the entries. Closing again does nothing and returns nil.
func (d *Dict[K, V]) Close() error {
	if d.m == nil {
		return kDict.zero
	}
	return dictErr("Close", d.m.Close())
}

// dictMeta names K and V for a receiving process to check.
func dictMeta[K comparable, V any]() []byte {
	return []byte(reflect.TypeFor[K]().String() + "\x00" + reflect.TypeFor[V]().String())
}

// exportHandle is how a Dict travels to another process; called by the package.
func (d *Dict[K, V]) exportHandle() (handle.Desc, error) {
	if d.m == nil {
		return handle.Desc{}, kDict.zero
	}
	fd, err := d.m.DupFd()
	if errors.Is(err, shmmap.ErrClosed) {
		return handle.Desc{}, errorf("%w: passing it to another process", kDict.closed)
	}
	if err != nil {
		return handle.Desc{}, errorf("passing a Dict: %w", err)
	}
	return handle.Desc{Kind: "Dict", Meta: dictMeta[K, V](), Fds: []int{fd}}, nil
}

// importHandle makes d the Dict described by h; called by the package.
func (d *Dict[K, V]) importHandle(h handle.Desc) error {
	if h.Kind != "Dict" || len(h.Fds) != 1 || string(h.Meta) != string(dictMeta[K, V]()) {
		handleCloseFds(h)
		return errorf("a shared %s (%q) arrived where a Dict[%v, %v] was expected", h.Kind, h.Meta, reflect.TypeFor[K](), reflect.TypeFor[V]())
	}
	m, err := shmmap.Open(h.Fds[0])
	if err != nil {
		return errorf("receiving a Dict: %w", err)
	}
	if err := d.init(m); err != nil {
		m.Close()
		return err
	}
	return nil
}

// keyCanon returns, for a key type whose memory has padding bytes and is
// copied as it is by the codec (numbers, and arrays and structs of them),
// a function that copies a key field by field into zeroed memory: two
// equal keys then encode alike, whatever their padding held. nil for
// every other type (encoded field by field, no padding involved).
func keyCanon[K comparable]() func(k *K) *K {
	t := reflect.TypeFor[K]()
	if !scalarLeaves(t) || !hasPadding(t) {
		return nil
	}
	return func(k *K) *K {
		c := new(K)
		copyLeaves(reflect.ValueOf(c).Elem(), reflect.ValueOf(k).Elem())
		return c
	}
}

func scalarLeaves(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return scalarLeaves(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if (!f.IsExported() && f.Name != "_") || !scalarLeaves(f.Type) {
				return false
			}
		}
		return true
	}
	return false
}

func hasPadding(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Array:
		return hasPadding(t.Elem())
	case reflect.Struct:
		var sum uintptr
		for i := range t.NumField() {
			f := t.Field(i)
			sum += f.Type.Size()
			if hasPadding(f.Type) {
				return true
			}
		}
		return sum != t.Size()
	}
	return false
}

// copyLeaves copies src to dst (zeroed) one scalar at a time; "_" fields
// stay zero.
func copyLeaves(dst, src reflect.Value) {
	switch src.Kind() {
	case reflect.Array:
		for i := range src.Len() {
			copyLeaves(dst.Index(i), src.Index(i))
		}
	case reflect.Struct:
		for i := range src.NumField() {
			if src.Type().Field(i).Name != "_" {
				copyLeaves(dst.Field(i), src.Field(i))
			}
		}
	default:
		dst.Set(src)
	}
}
