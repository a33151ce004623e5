package multiproc_test

import (
	"context"
	"testing"
	"time"

	"github.com/multiproc-go/multiproc"
)

var double = multiproc.Register("test.double", func(ctx context.Context, x int) (int, error) { return 2 * x, nil })

func TestSmokeCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for i := 0; i < 20; i++ {
		r, err := double.Call(ctx, 21)
		if err != nil || r != 42 {
			t.Fatal(r, err)
		}
	}
	t.Log(time.Since(start) / 20)
}
