package bench

import (
	"bytes"
	"runtime/debug"
	"strings"
	"testing"
)

// Linking agrees with how the test binary was built: package net (which
// multiproc imports) links cgo, and with it the dynamic loader, exactly
// when CGO_ENABLED was 1.
func TestLinking(t *testing.T) {
	got := Linking()
	if got != "static" && got != "dynamic" {
		t.Fatalf("Linking() = %q", got)
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Skip("no build information in the test binary")
	}
	for _, s := range bi.Settings {
		if s.Key == "CGO_ENABLED" {
			want := map[string]string{"1": "dynamic", "0": "static"}[s.Value]
			if got != want {
				t.Errorf("Linking() = %q in a build with CGO_ENABLED=%s", got, s.Value)
			}
			return
		}
	}
	t.Skip("the build information does not say CGO_ENABLED")
}

// The report says how the binary was linked, and explains a dynamic one.
func TestReportLinking(t *testing.T) {
	for _, link := range []string{"static", "dynamic"} {
		var buf bytes.Buffer
		PrintReport(&buf, &Report{GoVersion: "go1", OS: "linux", Arch: "amd64", CPUs: 2, Linking: link}, nil)
		out := buf.String()
		if !strings.Contains(out, "2 CPUs, "+link+" binary\n") {
			t.Errorf("%s: header does not say so:\n%s", link, out)
		}
		if explained := strings.Contains(out, "CGO_ENABLED=0"); explained != (link == "dynamic") {
			t.Errorf("%s: CGO_ENABLED=0 advice shown = %v:\n%s", link, explained, out)
		}
	}
}

func TestSharedLibrary(t *testing.T) {
	for file, want := range map[string]bool{
		"/usr/lib/x86_64-linux-gnu/libc.so.6": true, "/lib64/ld-linux-x86-64.so.2": true, "/opt/x/libfoo.so": true,
		"/tmp/multiproc": false, "/dev/shm/a.socket": false, "/memfd:ring.so.x (deleted)": false, "[vdso]": false, ".so": false,
	} {
		if got := sharedLibrary(file); got != want {
			t.Errorf("sharedLibrary(%q) = %v", file, got)
		}
	}
}
