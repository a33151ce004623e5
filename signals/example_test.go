//go:build linux

package signals_test

import (
	"errors"
	"fmt"

	"github.com/multiproc-go/multiproc/signals"
)

func ExampleLookup() {
	for _, s := range []string{"INT", "sigterm", "9", "RTMIN+3", "SIGRTMAX-1"} {
		in, err := signals.Lookup(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%-10s -> %2d %-11s %s\n", s, in.Signal, in.Name, in.Default)
	}
	_, err := signals.Lookup("FOO")
	fmt.Println(err, errors.Is(err, signals.ErrUnknownSignal))
	// Output:
	// INT        ->  2 SIGINT      terminate
	// sigterm    -> 15 SIGTERM     terminate
	// 9          ->  9 SIGKILL     terminate
	// RTMIN+3    -> 37 SIGRTMIN+3  terminate
	// SIGRTMAX-1 -> 63 SIGRTMAX-1  terminate
	// multiproc: unknown signal "FOO" true
}

func ExampleTable() {
	tab := signals.Table()
	for _, in := range tab[:4] {
		fmt.Printf("%2d %-8s %s\n", in.Signal, in.Name, in.Default)
	}
	fmt.Println(len(tab), "signals, the last one", tab[len(tab)-1].Name)
	// Output:
	//  1 SIGHUP   terminate
	//  2 SIGINT   terminate
	//  3 SIGQUIT  core
	//  4 SIGILL   core
	// 62 signals, the last one SIGRTMAX
}
