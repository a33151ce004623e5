package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/multiproc-go/multiproc"
)

// The messages, all on subjects under the work queue's name N:
//
//	N.tasks.<build>.<client>.<epoch>.<seq>  a task (JetStream, the work queue)
//	N.results.<client>              its result (core NATS, to the caller)
//	N.cancel.<client>               keys (or key prefixes) of the client's tasks to drop or stop
//	N.purge.<client>                a request to the head: purge the client's tasks of a key (prefix)
//	N.hosts                         host heartbeats (JSON HostStats)
//	N.hosts.ping                    a request every host answers with its heartbeat
//
// A task's headers name the function and carry the caller's deadline and
// task timeout, and its secret; its body is the encoded arguments. A
// result's headers name the task and carry the proof that its sender was
// given it (resultMAC); its body is a kind byte then the items or an
// error text.
const (
	hdrFunc     = "Mp-Func"
	hdrBatch    = "Mp-Batch"
	hdrDeadline = "Mp-Deadline" // unix nanoseconds: drop the task after it
	hdrTimeout  = "Mp-Timeout"  // nanoseconds: the task's TaskTimeout
	hdrCtx      = "Mp-Ctx"      // "1": the caller may cancel it
	hdrMulti    = "Mp-Multi"    // "1": the body holds several tasks (encodeMulti)
	hdrID       = "Mp-Id"       // on a result: the task's key
	hdrHost     = "Mp-Host"     // on a result: which host ran it
	hdrSecret   = "Mp-Secret"   // on a task: its secret, hex (see resultMAC)
	hdrMAC      = "Mp-Mac"      // on a result: resultMAC of the task's secret
	hdrBlob     = "Mp-Blob"     // the body is in the payload store (see blobs): its size
)

// Result kinds.
const (
	resItems      byte = iota // every item's outcome follows
	resWorkerDied             // the worker process running it died
	resTimeout                // it ran past its TaskTimeout
	resFailed                 // any other failure, as text
	resDeliveries             // handed out past MaxDeliveries (ErrDeliveriesExhausted), as text
)

// Item statuses inside a resItems result.
const (
	itemOK byte = iota
	itemErr
	itemPanic
)

// maxItems bounds the item count a message may claim (each item takes at
// least one byte, and a message at most the server's max payload anyway).
const maxItems = 1 << 24

func appendBytes(b, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

// reader decodes what appendBytes wrote, with every length bounded by
// what is left: the bytes come from the network.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errCorrupt
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = errCorrupt
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.err = errCorrupt
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

var errCorrupt = errors.New("multiproc: cluster: corrupt message")

func encodeArgs(args [][]byte) []byte {
	n := 8
	for _, a := range args {
		n += len(a) + 8
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(args)))
	for _, a := range args {
		b = appendBytes(b, a)
	}
	return b
}

func decodeArgs(b []byte) ([][]byte, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(b)) || n > maxItems {
		return nil, errCorrupt
	}
	args := make([][]byte, n)
	for i := range args {
		args[i] = r.bytes()
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errCorrupt
	}
	return args, nil
}

// encodeResults encodes a host's outcome of a task: the pool's results,
// or its error for the whole task.
func encodeResults(rs []multiproc.Result, err error) []byte {
	if err != nil {
		kind := resFailed
		switch {
		case errors.Is(err, multiproc.ErrWorkerDied):
			kind = resWorkerDied
		case errors.Is(err, context.DeadlineExceeded):
			kind = resTimeout
		}
		return append([]byte{kind}, err.Error()...)
	}
	n := 16
	for _, r := range rs {
		n += len(r.Value) + 8
	}
	b := make([]byte, 0, n)
	b = append(b, resItems)
	b = binary.AppendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		if r.Err == nil {
			b = append(b, itemOK)
			b = appendBytes(b, r.Value)
			continue
		}
		st, text := itemErr, r.Err.Error()
		var re *multiproc.RemoteError
		if errors.As(r.Err, &re) {
			text = re.Text
			if re.Panic {
				st = itemPanic
			}
		}
		b = append(b, st)
		b = appendBytes(b, []byte(text))
	}
	return b
}

// decodeResults turns a host's answer into the caller's results or error:
// want is how many results the task must have.
func decodeResults(b []byte, want int, fn, host string) ([]multiproc.Result, error) {
	r := reader{b: b}
	kind := r.byte()
	if r.err != nil {
		return nil, errCorrupt
	}
	if kind != resItems {
		text := strings.TrimPrefix(string(r.b), "multiproc: ")
		if len(text) > 4096 {
			text = text[:4096] + "..."
		}
		switch kind {
		case resWorkerDied:
			text = strings.TrimPrefix(text, strings.TrimPrefix(multiproc.ErrWorkerDied.Error(), "multiproc: ")+": ")
			return nil, fmt.Errorf("%w on cluster host %s: %s", multiproc.ErrWorkerDied, host, text)
		case resDeliveries:
			return nil, fmt.Errorf("%w: %s (host %s)", ErrDeliveriesExhausted, text, host)
		case resTimeout:
			return nil, fmt.Errorf("multiproc: cluster task %s on host %s: %s: %w", fn, host, text, context.DeadlineExceeded)
		default:
			return nil, fmt.Errorf("multiproc: cluster task %s on host %s: %s", fn, host, text)
		}
	}
	n := r.uvarint()
	if r.err != nil || n != uint64(want) {
		return nil, fmt.Errorf("multiproc: cluster: host %s answered task %s with %d results, want %d", host, fn, n, want)
	}
	rs := make([]multiproc.Result, n)
	for i := range rs {
		st := r.byte()
		p := r.bytes()
		switch st {
		case itemOK:
			rs[i].Value = p
		case itemErr, itemPanic:
			rs[i].Err = &multiproc.RemoteError{Text: string(p), Panic: st == itemPanic}
		default:
			r.err = errCorrupt
		}
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, fmt.Errorf("multiproc: cluster: corrupt result from host %s for task %s", host, fn)
	}
	return rs, nil
}

// member is one task of a message of several: its key is the message's
// key with the last element replaced by seq.
type member struct {
	seq    uint64
	fn     string
	batch  bool
	secret []byte
	args   [][]byte
}

// encodeMulti encodes several tasks with no deadline as one message:
// a count, then per task its seq, function, batch flag, secret and
// arguments.
func encodeMulti(calls []*call) []byte {
	n := 8
	for _, cl := range calls {
		n += len(cl.body) + len(cl.fn) + 24
	}
	b := make([]byte, 0, n)
	b = binary.AppendUvarint(b, uint64(len(calls)))
	for _, cl := range calls {
		b = binary.AppendUvarint(b, cl.seq)
		b = appendBytes(b, []byte(cl.fn))
		if cl.batch {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = appendBytes(b, cl.secret)
		b = appendBytes(b, cl.body)
	}
	return b
}

func decodeMulti(b []byte) ([]member, error) {
	r := reader{b: b}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(b)) || n > maxItems {
		return nil, errCorrupt
	}
	ms := make([]member, n)
	for i := range ms {
		ms[i].seq = r.uvarint()
		ms[i].fn = string(r.bytes())
		ms[i].batch = r.byte() == 1
		ms[i].secret = r.bytes()
		body := r.bytes()
		if r.err != nil || len(ms[i].secret) != secretLen {
			return nil, errCorrupt
		}
		args, err := decodeArgs(body)
		if err != nil || ms[i].fn == "" {
			return nil, errCorrupt
		}
		ms[i].args = args
	}
	if r.err != nil || len(r.b) != 0 {
		return nil, errCorrupt
	}
	return ms, nil
}
