// Package testtypes holds, in its subdirectories, types that tests of
// multiproc and internal/wire need from packages of their own: two
// packages both named config (a/config and b/config), each with a
// Config type.
package testtypes
