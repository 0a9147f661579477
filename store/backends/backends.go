// Package backends links every store backend into a binary: importing it
// registers each with package store. Add a blank import here when a backend
// is added.
package backends

import (
	// The embedded store of one switch process.
	_ "github.com/qrswitch/qrswitch/store/sqlite"
	// Redis, shared by many replicas.
	_ "github.com/qrswitch/qrswitch/store/redis"
)
