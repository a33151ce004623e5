//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

// containerJob holds shared objects inside slices, an array and maps, as
// Python programs pass a list of Queues or a dict of Conns.
type containerJob struct {
	Vs    []*multiproc.Value[int64]
	Arr   [2]*multiproc.Value[int64]
	Conns map[string]*multiproc.Conn
	Qs    map[int][]*multiproc.Queue[string]
}

var inContainers = multiproc.Register("test.inContainers", func(ctx context.Context, j containerJob) (string, error) {
	for _, v := range j.Vs {
		v.Add(1)
	}
	for _, v := range j.Arr {
		v.Add(10)
	}
	var names []string
	for name, c := range j.Conns {
		if err := c.Send(name); err != nil {
			return "", err
		}
		names = append(names, name)
	}
	sort.Strings(names)
	for k, qs := range j.Qs {
		for i, q := range qs {
			if err := q.Put(ctx, fmt.Sprintf("%d/%d", k, i)); err != nil {
				return "", err
			}
		}
	}
	return strings.Join(names, ","), nil
})

// Shared objects inside slices, arrays and maps reach a child and a pool
// task as the same objects; one object listed twice is one object there.
func TestSharedInContainers(t *testing.T) {
	ctx := testCtx(t, 30*time.Second)
	v1, _ := multiproc.NewValue[int64](0)
	v2, _ := multiproc.NewValue[int64](0)
	defer v1.Close()
	defer v2.Close()
	ra, wa, _ := multiproc.Pipe(false)
	rb, wb, _ := multiproc.Pipe(false)
	defer ra.Close()
	defer rb.Close()
	q, _ := multiproc.NewQueue[string](0)
	defer q.Close()
	job := containerJob{
		Vs:    []*multiproc.Value[int64]{v1, v1, v2}, // v1 twice: added to twice
		Arr:   [2]*multiproc.Value[int64]{v2, v1},
		Conns: map[string]*multiproc.Conn{"a": wa, "b": wb},
		Qs:    map[int][]*multiproc.Queue[string]{7: {q, q}},
	}
	check := func(how string, names string, round int64) {
		t.Helper()
		if names != "a,b" {
			t.Fatalf("%s: the child saw Conns %q", how, names)
		}
		if v1.Load() != 12*round || v2.Load() != 11*round {
			t.Fatalf("%s: values %d, %d, want %d, %d", how, v1.Load(), v2.Load(), 12*round, 11*round)
		}
		for _, c := range []*multiproc.Conn{ra, rb} {
			var s string
			if err := c.RecvContext(ctx, &s); err != nil {
				t.Fatalf("%s: %v", how, err)
			}
		}
		for i := range 2 {
			s, err := q.Get(ctx)
			if err != nil || s != fmt.Sprintf("7/%d", i) {
				t.Fatalf("%s: queue gave %q, %v", how, s, err)
			}
		}
	}
	names, err := inContainers.Call(ctx, job)
	if err != nil {
		t.Fatal(err)
	}
	check("Call", names, 1)
	pool := newPool(t, multiproc.PoolOptions{Processes: 1})
	names, err = inContainers.Apply(ctx, pool, job)
	if err != nil {
		t.Fatal(err)
	}
	check("pool Apply", names, 2)

}
