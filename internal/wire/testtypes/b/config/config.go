// Package config is one of two test packages of the same name, whose
// Config types must not be mistaken for each other (see wire.TypeName).
package config

// Config has the same layout as the other package's, so only its name
// tells them apart.
type Config struct {
	Host string
	Port int
}
