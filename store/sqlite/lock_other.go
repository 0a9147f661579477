//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package sqlite

import (
	"fmt"
	"os"
	"runtime"
)

// lockFile refuses to open: without flock nothing stops two processes from
// sharing the file, and the store must not run unguarded.
func lockFile(path string) (*os.File, error) {
	return nil, fmt.Errorf("opening %s: the sqlite store needs flock, which %s lacks; use the redis store", path, runtime.GOOS)
}

func unlockFile(*os.File) error { return nil }
