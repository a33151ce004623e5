//go:build linux && (amd64 || arm64)

package multiproc_test

import (
	"context"
	"fmt"
	"time"

	"github.com/multiproc-go/multiproc"
)

// Wait returns whichever Conns have something to read (Python's
// connection.wait); what it returns still holds its message.
func ExampleWait() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r1, w1, _ := multiproc.Pipe(false)
	r2, w2, _ := multiproc.Pipe(false)
	defer r1.Close()
	defer w1.Close()
	defer r2.Close()
	defer w2.Close()

	w2.Send("hello from the second pipe")
	ready, err := multiproc.Wait(ctx, r1, r2)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, obj := range ready {
		var s string
		obj.(*multiproc.Conn).Recv(&s)
		fmt.Println(len(ready), obj == multiproc.Waitable(r2), s)
	}
	// Output: 1 true hello from the second pipe
}
