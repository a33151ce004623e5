package cluster_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/multiproc-go/multiproc"
	"github.com/multiproc-go/multiproc/cluster"
)

var cube = multiproc.Register("example.cube", func(_ context.Context, x int) (int, error) { return x * x * x, nil })

// One machine, no setup: an embedded server and local workers. With
// Options.Listen, hosts on other machines join (cluster.Serve at
// c.URL()); the calls stay the same.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cluster.Connect(ctx, cluster.Options{Processes: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	cubes, err := cube.Map(ctx, c, []int{1, 2, 3, 4})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cubes)
	v, err := cube.Apply(ctx, c, 10)
	fmt.Println(v, err)
	// Output:
	// [1 8 27 64]
	// 1000 <nil>
}
