//go:build !unix

package storetest

import "time"

// processCPU cannot tell the process's CPU time on this platform; the
// benchmarks then report wall time only.
func processCPU() (time.Duration, bool) { return 0, false }
